package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway/nodereport"
	"github.com/nodemesh/nodemesh/internal/agent"
	agentapi "github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
	"github.com/nodemesh/nodemesh/mesh/provider/kube/ciliumidentity"
)

// clusterIdentities starts the cluster-wide identity allocator and waits
// until it knows every existing CiliumIdentity, so numbers survive a
// restart of the agent.
func clusterIdentities(ctx context.Context, kubeconfig string, log *slog.Logger) (*ciliumidentity.Allocator, error) {
	clients, err := kube.Connect(kubeconfig)
	if err != nil {
		return nil, err
	}
	a := ciliumidentity.NewAllocator(clients.Dynamic, ciliumidentity.WithLogger(log))
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	log.Info("cluster-wide identities: CiliumIdentity objects listed")
	return a, nil
}

// runKubernetes wires the Kubernetes provider and the node status reporter
// to the agent. With withPolicy the provider also watches Pods, Nodes and
// the policy kinds, and the policies' Valid conditions are written; the
// provider refuses to start (an error, not an empty policy) when the API
// server cannot serve them. It returns once everything is started; their
// errors go to errc.
func runKubernetes(ctx context.Context, log *slog.Logger, a *agent.Agent, kubeconfig, node string, controller gwv1.GatewayController, withPolicy bool, errc chan<- error) error {
	clients, err := kube.Connect(kubeconfig)
	if err != nil {
		return err
	}
	if node == "" {
		node = os.Getenv("NODE_NAME")
	}
	if node == "" {
		if node, err = os.Hostname(); err != nil {
			return fmt.Errorf("reading host name for --node-name: %w", err)
		}
	}
	core, gw, dyn := clients.Core, clients.Gateway, clients.Dynamic
	opts := []kube.Option{kube.WithLogger(log)}
	var sw *kube.StatusWriter
	if withPolicy {
		opts = append(opts, kube.WithPolicy(dyn))
		sw = kube.NewStatusWriter(dyn, node, log)
		go sw.Run(ctx)
	}
	prov := kube.New(core, gw, opts...)
	go func() {
		errc <- prov.Watch(ctx, func(s *input.Snapshot) {
			_ = a.Apply(ctx, s, prov.Problems()) // failures are logged and shown in status
			if sw != nil {
				if st := a.Status(); st.Policy != nil {
					sw.Update(policyVerdicts(s, st.Policy.Policies))
				}
			}
		})
	}()
	status := func() nodereport.AgentStatus {
		st := a.Status()
		return nodereport.AgentStatus{Gateways: st.Gateways, Proxies: st.Proxies, PublishError: st.PublishError, Policy: nodePolicy(st.Policy)}
	}
	rep := nodereport.NewReporter(dyn, core, node, controller, status, nodereport.WithReporterLogger(log))
	go rep.Run(ctx)
	log.Info("reporting node proxy status", "node", node)
	return nil
}

// policyVerdicts turns the compiler's verdicts on the snapshot's cilium.io
// policies into the Valid conditions to write. Validity is about the
// version itself: a rejection (the policy or its current version not in
// force because of an error in it) makes it False; states that depend on
// the node's machinery (waiting for proxies or authentication, a proxy
// that refused the L7 configuration, a datapath error) do not make a
// policy invalid.
func policyVerdicts(s *input.Snapshot, statuses []policy.PolicyStatus) []kube.PolicyVerdict {
	type key struct{ kind, ns, name string }
	byKey := make(map[key]policy.PolicyStatus, len(statuses))
	for _, ps := range statuses {
		byKey[key{ps.Kind, ps.Namespace, ps.Name}] = ps
	}
	var out []kube.PolicyVerdict
	add := func(kind, ns, name string, uid types.UID, gen int64) {
		ps, ok := byKey[key{kind, ns, name}]
		if !ok {
			return
		}
		v := kube.PolicyVerdict{Kind: kind, Namespace: ns, Name: name, UID: uid, Generation: gen, Valid: true}
		if ps.Error != "" && (ps.State == policy.Rejected || ps.State == policy.EnforcedPrevious) {
			v.Valid, v.Reason, v.Message = false, "Invalid", ps.Error
			if ps.State == policy.EnforcedPrevious {
				v.Message += " (the last accepted version stays enforced)"
			}
		}
		out = append(out, v)
	}
	for _, p := range s.CiliumNetworkPolicies {
		add(policy.KindCNP, p.Namespace, p.Name, p.UID, p.Generation)
	}
	for _, p := range s.CiliumClusterwideNetworkPolicies {
		add(policy.KindCCNP, "", p.Name, p.UID, p.Generation)
	}
	return out
}

// maxReportedPolicies bounds the policies one NodeProxyStatus lists (the
// CRD's MaxItems), so a cluster with very many policies cannot make the
// report unwritable.
const maxReportedPolicies = 5000

// nodePolicy is the node's policy state as its NodeProxyStatus reports it,
// so `kubectl get nodeproxystatuses -o yaml` shows, per node, which
// policies are not enforced there yet.
func nodePolicy(p *agentapi.PolicyStatus) *v1alpha1.NodePolicyState {
	if p == nil {
		return nil
	}
	out := &v1alpha1.NodePolicyState{Endpoints: int32(min(p.Endpoints, 1<<31-1)), DatapathError: truncateString(p.DatapathError, 32768)}
	for i, ps := range p.Policies {
		if i == maxReportedPolicies {
			out.Truncated = true
			break
		}
		out.Policies = append(out.Policies, v1alpha1.PolicyEnforcement{Kind: ps.Kind, Namespace: ps.Namespace, Name: ps.Name,
			State: string(ps.State), Reason: truncateString(ps.Reason, 1024)})
	}
	return out
}

// truncateString cuts s to at most n bytes on a UTF-8 boundary.
func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
