package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/internal/echo"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// ingressPolicies holds the AT-ING-06 policies, one file per step.
const ingressPolicies = "testdata/ingress-policy"

// TestLabIngressPolicy runs AT-ING-06 (Cilium's "Ingress and network
// policy" guide) on two nodes: Cilium's basic-ingress in front of the
// lab's bookinfo stand-ins, two clients outside the cluster (hosts on the
// lab network that are not nodes, whose addresses every node's datapath
// gives the identity world) and a client Pod inside it, and the guide's
// policies applied one after another through the API server, each step
// checked through either node, on the first answer, once every node
// reports the policies Enforced (WaitPolicies):
//  1. no policy: every client gets details through the Ingress;
//  2. external-lockdown (ingress from the cluster only, every endpoint):
//     the outside clients are answered 403, the client Pod still gets in;
//  3. allow-cidr (the ingress endpoint admits the first outside client's
//     /32): that client gets in again, the other one is still refused;
//  4. default-deny, the guide's manifest unchanged (every endpoint outside
//     kube-system, the ingress endpoint included, may only send DNS to
//     kube-dns; its DNS rule allowing every name is enforced as the L4
//     allow of 53/UDP): the ingress endpoint's egress denies every backend
//     of the Ingress, so /details (and /) is answered 403 to the outside
//     clients, as Cilium's proxy answers (xds/translator turns a route
//     whose backends are all denied into a 403 direct response), and the
//     client Pod's own egress to the Ingress is dropped: denied for
//     external and in-cluster traffic, as the guide expects;
//  5. allow-ingress-egress (the ingress endpoint may reach the cluster):
//     details is served again to the outside client steps 2 and 3 admit;
//     the client Pod's egress stays locked down to DNS by default-deny
//     (the guide checks this step from outside only).
//
// Each policy's status on each node reports it Enforced, and Selected
// counts the ingress endpoint: external-lockdown selects the node's Pods
// and it, default-deny the node's Pods outside kube-system and it, the
// others only it; default-deny's status says its DNS rule is enforced at
// L4 (Reason DNSEnforcedAtL4).
func TestLabIngressPolicy(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2, ChartValues: map[string]any{
		"ingressController": map[string]any{"className": "cilium"},
	}})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/ingress-bookinfo.yaml", filepath.Join(ingressExamples, "basic-ingress.yaml")}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 3*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	st, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	pool := netip.MustParsePrefix(DefaultLoadBalancerPool)
	var addr netip.Addr
	eventually(t, "the load-balancer address of basic-ingress", 2*time.Minute, func() error {
		ing, err := l.Client.NetworkingV1().Ingresses("default").Get(ctx, "basic-ingress", metav1.GetOptions{})
		if err != nil {
			return err
		}
		lb := ing.Status.LoadBalancer.Ingress
		if len(lb) != 1 {
			return fmt.Errorf("status.loadBalancer %+v", lb)
		}
		a, err := netip.ParseAddr(lb[0].IP)
		if err != nil || !pool.Contains(a) {
			return fmt.Errorf("status.loadBalancer %+v: not in the load balancer's pool %s", lb, pool)
		}
		addr = a
		return nil
	})

	// Two hosts outside the cluster: admitted is the one allow-cidr
	// names, other is any other outside address.
	admitted, other := netip.MustParseAddr("10.250.0.240"), netip.MustParseAddr("10.250.0.241")
	extAdmitted, err := l.Network.AddExternal("client", admitted)
	if err != nil {
		t.Fatal(err)
	}
	extOther, err := l.Network.AddExternal("other", other)
	if err != nil {
		t.Fatal(err)
	}
	// The guide's point is that they are world to the mesh, not host,
	// remote-node or a cluster identity: no ipcache row of either node
	// covers them.
	for _, n := range l.Nodes {
		got, err := datapath.LookupIdentities(n.PinDir, []netip.Addr{admitted, other})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{admitted, other} {
			if got[a] != model.IdentityWorld {
				t.Fatalf("%s: the outside client %s has identity %d, want world (%d)", n.Name, a, got[a], model.IdentityWorld)
			}
		}
	}
	podArgv, err := st.ExecArgv(ctx, "default", "client", "", []string{"curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", "http://" + addr.String() + "/details/1"})
	if err != nil {
		t.Fatal(err)
	}
	type client struct {
		name string
		argv func(path string) []string
	}
	outside := func(ns, name string) client {
		return client{name, func(path string) []string {
			return []string{"ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", "http://" + addr.String() + path}
		}}
	}
	clients := map[string]client{
		"admitted": outside(extAdmitted.Name, "the outside client "+admitted.String()),
		"other":    outside(extOther.Name, "the outside client "+other.String()),
		"pod": {"the client Pod", func(path string) []string {
			argv := append([]string(nil), podArgv...)
			argv[len(argv)-1] = "http://" + addr.String() + path
			return argv
		}},
	}
	// status asks for path and returns the HTTP status, and checks that
	// a 200 came from a Pod of backend with the path intact.
	status := func(c client, path, backend string) (int, error) {
		out, code := run(t, c.argv(path), "")
		if code != 0 {
			return 0, fmt.Errorf("%s: curl %s: exit %d: %s", c.name, path, code, out)
		}
		i := strings.LastIndexByte(out, '\n')
		sc, err := strconv.Atoi(out[i+1:])
		if err != nil {
			return 0, fmt.Errorf("%s: curl %s: no status in %q", c.name, path, out)
		}
		if sc != 200 {
			return sc, nil
		}
		var got echo.Response
		if err := json.Unmarshal([]byte(out[:max(i, 0)]), &got); err != nil {
			return sc, fmt.Errorf("%s: %s: %v: %s", c.name, path, err, out)
		}
		if !strings.HasPrefix(got.Backend, backend+"-") || got.Path != path {
			return sc, fmt.Errorf("%s: %s answered by %q for %q, want a Pod of %s", c.name, path, got.Backend, got.Path, backend)
		}
		return sc, nil
	}
	// expect checks every client's status for /details/1 and / through
	// either node (the outside clients pinned to it; the client Pod goes
	// through its own node). The policies are in force by then, so the
	// first answer counts.
	// A want of dropped: no answer at all (curl fails).
	const dropped = -1
	expect := func(step string, want map[string]int) {
		t.Helper()
		for _, n := range l.Network.Nodes {
			for _, ext := range []*testbed.Namespace{extAdmitted, extOther} {
				pinTo(t, ctx, ext, addr, n.Namespace)
			}
			for _, who := range []string{"admitted", "other", "pod"} {
				for _, p := range []struct{ path, backend string }{{"/details/1", "details-v1"}, {"/", "productpage-v1"}} {
					if want[who] == dropped {
						if out, code := run(t, clients[who].argv(p.path), ""); code == 0 {
							t.Fatalf("%s, through %s: %s got an answer for %s, want it dropped: %s", step, n.Name, clients[who].name, p.path, out)
						}
						continue
					}
					got, err := status(clients[who], p.path, p.backend)
					if err != nil {
						t.Fatalf("%s, through %s: %v", step, n.Name, err)
					}
					if got != want[who] {
						t.Fatalf("%s, through %s: %s got %d for %s, want %d", step, n.Name, clients[who].name, got, p.path, want[who])
					}
				}
			}
		}
	}
	// enforce applies a step's policy file and waits until every node
	// reports every policy Enforced: for a policy of the ingress endpoint
	// that means its proxies acknowledged the listeners that carry it
	// (internal/agent), so the first request after it meets the policy.
	enforce := func(file string) {
		t.Helper()
		if err := ApplyPaths(ctx, l.Config, []string{filepath.Join(ingressPolicies, file)}); err != nil {
			t.Fatal(err)
		}
		if err := WaitPolicies(ctx, *st, l.Client, dyn, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// selected checks each node's verdict on the policies: Enforced, and
	// selecting the ingress endpoint (plus, for external-lockdown, every
	// Pod of the node). The agent's own status is read, which an
	// unrelated change of the configuration can make Pending for a
	// moment until its proxies acknowledge it: hence the wait.
	selected := func(names ...string) {
		t.Helper()
		for _, n := range l.Nodes {
			eventually(t, n.Name+"'s verdicts on "+strings.Join(names, ", "), 30*time.Second, func() error {
				pods, err := l.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
				if err != nil {
					return err
				}
				local, outsideKubeSystem := 0, 0
				for _, p := range pods.Items {
					if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && !p.Spec.HostNetwork {
						local++
						if p.Namespace != "kube-system" {
							outsideKubeSystem++
						}
					}
				}
				as, err := api.FetchStatus(ctx, filepath.Join(n.StateDir, "agent.sock"))
				if err != nil {
					return err
				}
				if as.Policy == nil {
					return fmt.Errorf("no policy status")
				}
				for _, name := range names {
					want := 1 // the ingress endpoint
					switch name {
					case "external-lockdown":
						want += local
					case "default-deny":
						want += outsideKubeSystem
					}
					var found *policy.PolicyStatus
					for i, ps := range as.Policy.Policies {
						if ps.Kind == policy.KindCCNP && ps.Name == name {
							found = &as.Policy.Policies[i]
						}
					}
					switch {
					case found == nil:
						return fmt.Errorf("no verdict on %s", name)
					case found.State != policy.Enforced || !found.Ingress || found.Selected != want:
						return fmt.Errorf("%s is %s (%s %s) selecting %d, ingress endpoint %t; want Enforced selecting %d with the ingress endpoint",
							name, found.State, found.Reason, found.Error, found.Selected, found.Ingress, want)
					case name == "default-deny" && found.Reason != policy.ReasonDNSEnforcedAtL4:
						return fmt.Errorf("%s has reason %q (%s), want %s", name, found.Reason, found.Message, policy.ReasonDNSEnforcedAtL4)
					}
				}
				return nil
			})
		}
	}

	// 1. No policy. The proxies may still be taking the Ingress in.
	for _, who := range []string{"admitted", "other", "pod"} {
		eventually(t, clients[who].name+" through the Ingress", time.Minute, func() error {
			got, err := status(clients[who], "/details/1", "details-v1")
			if err == nil && got != 200 {
				err = fmt.Errorf("status %d", got)
			}
			return err
		})
	}
	expect("no policy", map[string]int{"admitted": 200, "other": 200, "pod": 200})

	enforce("external-lockdown.yaml")
	expect("external-lockdown", map[string]int{"admitted": 403, "other": 403, "pod": 200})
	selected("external-lockdown")

	enforce("allow-cidr.yaml")
	expect("allow-cidr", map[string]int{"admitted": 200, "other": 403, "pod": 200})
	selected("external-lockdown", "allow-cidr")

	enforce("default-deny.yaml")
	expect("default-deny", map[string]int{"admitted": 403, "other": 403, "pod": dropped})
	selected("external-lockdown", "allow-cidr", "default-deny")

	enforce("allow-ingress-egress.yaml")
	expect("allow-ingress-egress", map[string]int{"admitted": 200, "other": 403, "pod": dropped})
	selected("external-lockdown", "allow-cidr", "default-deny", "allow-ingress-egress")
}
