package translator

import (
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestIngressPolicySparesMeshListeners checks that the ingress endpoint's
// policy reaches only what outside clients use: a GAMMA listener (its
// clients are Pods) keeps its TCP chain, gets no RBAC filter (HTTP or
// network), and its
// routes keep the unfiltered cluster the Gateway routes share.
func TestIngressPolicySparesMeshListeners(t *testing.T) {
	cfg := readIR(t, "testdata/ingress-policy-gamma.in.yaml")
	res, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	requireValid(t, res)

	listeners := map[string]*listenerv3.Listener{}
	for _, l := range res.Listeners {
		listeners[l.GetName()] = l
	}
	rbacOf := func(name string) bool {
		l := listeners[name]
		if l == nil {
			t.Fatalf("listener %q missing", name)
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(hcm) != nil {
					continue
				}
				for _, hf := range hcm.GetHttpFilters() {
					if hf.GetName() == filterRBAC {
						return true
					}
				}
			}
		}
		return false
	}
	if !rbacOf("gateway/default/eg/80") {
		t.Error("Gateway listener has no RBAC filter")
	}
	if rbacOf("mesh/default/details/9080") {
		t.Error("GAMMA listener got the ingress endpoint's RBAC filter")
	}
	if l := listeners["mesh/default/db/5432"]; l == nil || len(l.GetFilterChains()) != 1 {
		t.Errorf("GAMMA TCP listener lost its chain: %v", l)
	} else if fs := l.GetFilterChains()[0].GetFilters(); len(fs) != 1 || fs[0].GetName() != filterTCPProxy {
		t.Errorf("GAMMA TCP chain got filters other than tcp_proxy: %v", fs)
	}

	clusterOf := func(rc string) string {
		for _, c := range res.RouteConfigurations {
			if c.GetName() == rc {
				return c.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster()
			}
		}
		t.Fatalf("route configuration %q missing", rc)
		return ""
	}
	gw, mesh := clusterOf("gateway/default/eg/80/http"), clusterOf("mesh/default/details/9080/http")
	if gw == mesh {
		t.Fatalf("Gateway and GAMMA routes share cluster %q", gw)
	}
	addrs := func(name string) []string {
		for _, cla := range res.ClusterLoadAssignments {
			if cla.GetClusterName() == name {
				var out []string
				for _, lle := range cla.GetEndpoints() {
					for _, e := range lle.GetLbEndpoints() {
						out = append(out, e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
					}
				}
				return out
			}
		}
		t.Fatalf("no load assignment for %q", name)
		return nil
	}
	if got := addrs(gw); !slices.Equal(got, []string{"10.0.7.1"}) {
		t.Errorf("Gateway route's endpoints = %v, want [10.0.7.1]", got)
	}
	if got := addrs(mesh); !slices.Equal(got, []string{"10.0.7.1", "10.0.7.9"}) {
		t.Errorf("GAMMA route's endpoints = %v, want both", got)
	}
}

// TestIngressPolicyClosesUDPListeners checks that a Gateway UDP listener is
// not served while world → ingress is enforced (the UDP proxy cannot check
// the client), and is served again once no policy selects the ingress.
func TestIngressPolicyClosesUDPListeners(t *testing.T) {
	cfg := readIR(t, "testdata/ingress-policy-gamma.in.yaml")
	dns := *cfg.Clusters[0]
	dns.Name, dns.Protocol = "service/default/dns/5353", ir.ProtocolUDP
	cfg.Clusters = append(cfg.Clusters, &dns)
	slices.SortFunc(cfg.Clusters, func(a, b *ir.Cluster) int { return strings.Compare(a.Name, b.Name) })
	cfg.Listeners = append(cfg.Listeners, &ir.Listener{Name: "gateway/default/eg/5353", Address: "0.0.0.0", Port: 5353,
		UDP: &ir.UDPProxy{Cluster: dns.Name}})
	served := func() bool {
		res, err := Translate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		requireValid(t, res)
		return slices.ContainsFunc(res.Listeners, func(l *listenerv3.Listener) bool {
			return l.GetName() == listenerName(cfg.Listeners[len(cfg.Listeners)-1])
		})
	}
	if served() {
		t.Error("a Gateway UDP listener is served while the ingress endpoint's policy is enforced")
	}
	cfg.IngressPolicy = nil
	if !served() {
		t.Error("a Gateway UDP listener is not served without an ingress endpoint policy")
	}
}

// TestIngressPolicyDeniedChurn follows a backend through endpoint changes
// with the memoizing Translator: every endpoint denied answers 403, one
// admitted endpoint turns the route back into forwarding to it, and no
// endpoints at all forwards (503 from the proxy, not a denial). Each
// step's output must equal a fresh translation of the same IR.
func TestIngressPolicyDeniedChurn(t *testing.T) {
	base := readIR(t, "testdata/ingress-policy-denied-backends.in.yaml")
	const details = "service/default/details/9080"
	withEndpoints := func(eps ...ir.Endpoint) *ir.Config {
		cfg := clone(t, base)
		for _, c := range cfg.Clusters {
			if c.Name == details {
				c.Endpoints = eps
			}
		}
		return cfg
	}
	denied := ir.Endpoint{Address: "10.0.7.2", Port: 9080, Ready: true}
	admitted := ir.Endpoint{Address: "10.0.7.1", Port: 9080, Ready: true}
	steps := []struct {
		name string
		cfg  *ir.Config
		want string // "403" or the cluster the route forwards to
	}{
		{"all denied", withEndpoints(denied), "403"},
		{"one admitted", withEndpoints(denied, admitted), details + viaIngressSuffix},
		{"denied again", withEndpoints(denied), "403"},
		{"no endpoints", withEndpoints(), details + viaIngressSuffix},
		{"denied once more", withEndpoints(denied), "403"},
	}
	tr := New()
	for _, s := range steps {
		got, err := tr.Translate(s.cfg)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		want, err := Translate(s.cfg)
		if err != nil {
			t.Fatal(err)
		}
		requireEqual(t, want, got)
		requireValid(t, got)
		var action string
		for _, rc := range got.RouteConfigurations {
			if rc.GetName() != "gateway/default/eg/80/http" {
				continue
			}
			for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
				if r.GetName() != "httproute/default/details/rule/0/match/0" {
					continue
				}
				if dr := r.GetDirectResponse(); dr != nil {
					if dr.GetStatus() != 403 || dr.GetBody().GetInlineString() != accessDenied {
						t.Fatalf("%s: direct response %v, want 403 %q", s.name, dr, accessDenied)
					}
					action = "403"
				} else {
					action = r.GetRoute().GetCluster()
				}
			}
		}
		if action != s.want {
			t.Errorf("%s: the details route does %q, want %q", s.name, action, s.want)
		}
	}
}

// TestIngressPolicyOnHostNetworkListener checks AT-ING-06 on an Ingress
// host-network listener (plainAndTLS: HTTP and HTTPS on one node port):
// each of its chains, the plaintext one, the terminating one and the
// passthrough one, checks the client's direct address against the
// ingress endpoint's policy, HTTP chains with the RBAC filter and the TCP
// chain with network RBAC before tcp_proxy.
func TestIngressPolicyOnHostNetworkListener(t *testing.T) {
	res, err := Translate(readIR(t, "testdata/ingress-hostnet.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	requireValid(t, res)
	if len(res.Listeners) != 1 {
		t.Fatalf("%d listeners, want the one host-network listener", len(res.Listeners))
	}
	chains := res.Listeners[0].GetFilterChains()
	if len(chains) != 3 {
		t.Fatalf("%d filter chains, want plain, TLS and passthrough", len(chains))
	}
	for i, fc := range chains {
		fs := fc.GetFilters()
		checked := false
		switch last := fs[len(fs)-1]; last.GetName() {
		case filterHTTPConnectionManager:
			hcm := &hcmv3.HttpConnectionManager{}
			if err := last.GetTypedConfig().UnmarshalTo(hcm); err != nil {
				t.Fatal(err)
			}
			checked = slices.ContainsFunc(hcm.GetHttpFilters(), func(hf *hcmv3.HttpFilter) bool { return hf.GetName() == filterRBAC })
		case filterTCPProxy:
			checked = len(fs) > 1 && fs[0].GetName() == filterNetworkRBAC
		}
		if !checked {
			t.Errorf("filter chain %d (transport %q) does not check the ingress endpoint's policy", i, fc.GetFilterChainMatch().GetTransportProtocol())
		}
	}
	var transports []string
	for _, fc := range chains {
		transports = append(transports, fc.GetFilterChainMatch().GetTransportProtocol())
	}
	if !slices.Equal(transports, []string{transportRawBuffer, transportTLS, transportTLS}) {
		t.Errorf("transport protocols %q, want raw_buffer for the plaintext chain and tls for the others", transports)
	}
}

// TestIngressPolicyKeepsActionsApart gives a Gateway route and a GAMMA
// route the very same backends, as one rule attached to a Gateway and to
// a Service makes them: the two share no action, since the Gateway route
// names the filtered variant of the cluster and the GAMMA route the
// cluster itself, whichever of them was built last.
func TestIngressPolicyKeepsActionsApart(t *testing.T) {
	cfg := readIR(t, "testdata/ingress-policy-gamma.in.yaml")
	route := func(l string) *ir.Route {
		for _, x := range cfg.Listeners {
			if x.Name == l {
				return x.Chains[0].Routes.VirtualHosts[0].Routes[0]
			}
		}
		t.Fatalf("listener %q missing", l)
		return nil
	}
	gw, mesh := route("gateway/default/eg/80"), route("mesh/default/details/9080")
	mesh.Backends = gw.Backends
	res, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	requireValid(t, res)
	for rc, want := range map[string]string{
		"gateway/default/eg/80/http":     "service/default/details/9080/via-ingress",
		"mesh/default/details/9080/http": "service/default/details/9080",
	} {
		for _, c := range res.RouteConfigurations {
			if c.GetName() == rc {
				if got := c.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster(); got != want {
					t.Errorf("%s: route names cluster %q, want %q", rc, got, want)
				}
			}
		}
	}
}
