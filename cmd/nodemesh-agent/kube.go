package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway/nodereport"
	"github.com/nodemesh/nodemesh/internal/agent"
	agentapi "github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/envoyconfig"
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
// to the agent. The provider always watches the Envoy config kinds (as
// optional kinds: a cluster without their CRDs runs without them). With
// withPolicy it also watches Pods, Nodes and the policy kinds, and the
// policies' Valid conditions are written; the provider refuses to start
// (an error, not an empty policy) when the API server cannot serve them.
// The Envoy configs' Valid conditions are written in both cases. It
// returns once everything is started; their errors go to errc.
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
	opts := []kube.Option{kube.WithLogger(log), kube.WithEnvoyConfigs(dyn), kube.WithGatewayClassConfigs(dyn)}
	if withPolicy {
		opts = append(opts, kube.WithPolicy(dyn))
	}
	sw := kube.NewStatusWriter(dyn, node, log)
	go sw.Run(ctx)
	prov := kube.New(core, gw, opts...)
	var last atomic.Pointer[input.Snapshot]
	go func() {
		errc <- prov.Watch(ctx, func(s *input.Snapshot) {
			last.Store(s)
			_ = a.Apply(ctx, s, prov.Problems()) // failures are logged and shown in status
		})
	}()
	go followVerdicts(ctx, a, &last, sw)
	go followIngressRejections(ctx, a, &last, core, node, log)
	status := func() nodereport.AgentStatus {
		st := a.Status()
		return nodereport.AgentStatus{Gateways: st.Gateways, Proxies: st.Proxies, PublishError: st.PublishError, Policy: nodePolicy(st.Policy),
			CannotRedirect: a.CannotRedirect()}
	}
	rep := nodereport.NewReporter(dyn, core, node, controller, status, nodereport.WithReporterLogger(log))
	go rep.Run(ctx)
	log.Info("reporting node proxy status", "node", node)
	return nil
}

// followVerdicts hands the status writer this node's verdicts on the
// cilium.io objects of the latest snapshot whenever they change: after an
// Apply, and when a proxy rejects (or later accepts) the resources of an
// Envoy config, which happens after the Apply that published them. It
// waits on the agent's events, never polls; an unchanged set of verdicts
// is not handed on, and the writer writes only what differs from what it
// wrote, so a quiet cluster causes no API calls.
func followVerdicts(ctx context.Context, a *agent.Agent, last *atomic.Pointer[input.Snapshot], sw *kube.StatusWriter) {
	var prev []kube.PolicyVerdict
	for {
		var cur []kube.PolicyVerdict
		_, err := a.WaitStatus(ctx, func(st *agentapi.Status) bool {
			s := last.Load()
			if s == nil {
				return false
			}
			cur = envoyConfigVerdicts(s, st.EnvoyConfigs)
			if st.Policy != nil {
				cur = append(policyVerdicts(s, st.Policy.Policies), cur...)
			}
			return !slices.Equal(cur, prev)
		})
		if err != nil {
			return // ctx ended
		}
		sw.Update(cur)
		prev = cur
	}
}

// envoyConfigVerdicts turns the agent's verdicts on the snapshot's Envoy
// configs into their Valid conditions. A refusal by translation
// (Invalid, Unsupported, Conflict, NotRedirected) or by a proxy
// (ProxyRejected, the NACK's text) makes the condition False with the
// exact error; a config waiting for the proxies' acknowledgement is
// accepted. A config this node's labels do not select gets no verdict
// from this node: it says nothing about it.
func envoyConfigVerdicts(s *input.Snapshot, statuses []agentapi.EnvoyConfigStatus) []kube.PolicyVerdict {
	type key struct{ kind, ns, name string }
	byKey := make(map[key]agentapi.EnvoyConfigStatus, len(statuses))
	for _, st := range statuses {
		byKey[key{st.Kind, st.Namespace, st.Name}] = st
	}
	var out []kube.PolicyVerdict
	add := func(kind, ns, name string, uid types.UID, gen int64) {
		st, ok := byKey[key{kind, ns, name}]
		if !ok || st.Reason == envoyconfig.ReasonNotSelected {
			return
		}
		v := kube.PolicyVerdict{Kind: kind, Namespace: ns, Name: name, UID: uid, Generation: gen, Valid: true, Reason: envoyconfig.ReasonAccepted,
			Message: st.Message}
		if !st.Valid {
			v.Valid, v.Reason, v.Message = false, st.Reason, st.Message
		}
		out = append(out, v)
	}
	for _, c := range s.CiliumEnvoyConfigs {
		add(envoyconfig.KindEnvoyConfig, c.Namespace, c.Name, c.UID, c.Generation)
	}
	for _, c := range s.CiliumClusterwideEnvoyConfigs {
		add(envoyconfig.KindClusterwideEnvoyConfig, "", c.Name, c.UID, c.Generation)
	}
	return out
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
	out := &v1alpha1.NodePolicyState{Endpoints: int32(min(p.Endpoints, 1<<31-1)), DatapathError: truncateString(p.DatapathError, 32768),
		GatewayFromNode: truncateString(p.GatewayFromNode, 4096)}
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
