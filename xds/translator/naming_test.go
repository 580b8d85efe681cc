package translator

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

func TestOriginOf(t *testing.T) {
	gw := &ir.Listener{Name: ir.GatewayNamePrefix + "default/web/80"}
	for _, tc := range []struct {
		name string
		want Origin
	}{
		{listenerName(gw), Origin{OriginGateway, "default", "web"}},
		{routeConfigName(&ir.RouteTable{Name: gw.Name + "/https/secure"}), Origin{OriginGateway, "default", "web"}},
		{clusterName(ir.ServiceNamePrefix + "apps/echo/8080"), Origin{OriginService, "apps", "echo"}},
		{secretName(ir.SecretNamePrefix + "apps/cert"), Origin{OriginSecret, "apps", "cert"}},
		{policyListenerName(&ir.PolicyListener{Name: ir.PolicyListenerName(ir.PolicyIngress, ir.L7HTTP)}), Origin{OriginPolicy, "", "ingress/http"}},
		{rbacExtensionName(ir.PolicyEgress), Origin{OriginPolicy, "", "egress/http/rbac"}},
		{headerMatchExtensionName(ir.PolicyIngress), Origin{OriginPolicy, "", "ingress/http/header-match"}},
		{kafkaExtensionName(ir.PolicyIngress), Origin{OriginPolicy, "", "ingress/kafka"}},
		{destinationRBACName, Origin{OriginPolicy, "", "egress/http/destination-rbac"}},
		{originalDstCluster, Origin{OriginPolicy, "", "original-dst"}},
		{accessLogCluster, Origin{OriginPolicy, "", accessLogCluster}},
		// Ingresses: a dedicated one's listener, route configuration and
		// routes; the shared set's; a dedicated Ingress named like a port
		// in a namespace called "shared".
		{listenerName(&ir.Listener{Name: ir.IngressNamePrefix + "apps/web/80"}), Origin{OriginIngress, "apps", "web"}},
		{routeConfigName(&ir.RouteTable{Name: ir.IngressNamePrefix + "apps/web/443/https/default/cert"}), Origin{OriginIngress, "apps", "web"}},
		{ir.IngressNamePrefix + "apps/web/rule/0/match/0", Origin{OriginIngress, "apps", "web"}},
		{ir.IngressNamePrefix + "apps/web/default-backend", Origin{OriginIngress, "apps", "web"}},
		{listenerName(&ir.Listener{Name: ir.IngressNamePrefix + "shared/80"}), Origin{Kind: OriginIngress}},
		{routeConfigName(&ir.RouteTable{Name: ir.IngressNamePrefix + "shared/80/http"}), Origin{Kind: OriginIngress}},
		{ir.IngressNamePrefix + "shared/443/80", Origin{OriginIngress, "shared", "443"}},
		{ir.IngressNamePrefix + "shared/443/80/http", Origin{OriginIngress, "shared", "443"}},
		{"ingress/", Origin{}},
		{"ingress/apps/web", Origin{}},
		{"ingress/shared/http", Origin{}},
		{"ingress/shared/080", Origin{}},
		{"ingress//web/80", Origin{}},
		// Names of no object: hand-made IR, or cut short.
		{"l0", Origin{}},
		{"gateway/", Origin{}},
		{"gateway/default", Origin{}},
		{"gateway//web/80", Origin{}},
		{"policy/", Origin{}},
		{invalidBackendCluster, Origin{}},
		{"gatewayx/default/web/80", Origin{}},
	} {
		if got := OriginOf(tc.name); got != tc.want {
			t.Errorf("OriginOf(%q) = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestPolicyResourcesArePolicyOrigin: every resource an L7 policy
// translates to reads back as policy, so a rejection of any of them is
// reported on network policy, never on a Gateway.
func TestPolicyResourcesArePolicyOrigin(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "policy", "*.in.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no policy inputs: %v", err)
	}
	for _, in := range ins {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := decodeIR(data)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Translate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range res.Listeners {
			names = append(names, l.Name)
		}
		for _, r := range res.RouteConfigurations {
			names = append(names, r.Name)
		}
		for _, c := range res.Clusters {
			names = append(names, c.Name)
		}
		for _, e := range res.ExtensionConfigs {
			names = append(names, e.Name)
		}
		for _, n := range names {
			if o := OriginOf(n); o.Kind != OriginPolicy {
				t.Errorf("%s: resource %q reads back as %+v, want policy", in, n, o)
			}
		}
	}
}

// TestNameIsCleanAgreesWithRunes compares nameIsClean, which reads ASCII
// bytewise, with the rune-by-rune reading on names mixing ASCII, control
// bytes, '%', multi-byte runes and invalid UTF-8.
func TestNameIsCleanAgreesWithRunes(t *testing.T) {
	pieces := []string{"a", "/", "-", "%", "\x00", "\x1f", "\x7f", "é", "€", "\U0001F600", "\xff", "\xc3", "\xe2\x82", "\ufffd", " "}
	r := rand.New(rand.NewSource(4))
	for range 100000 {
		var b strings.Builder
		for range r.Intn(8) {
			b.WriteString(pieces[r.Intn(len(pieces))])
		}
		s := b.String()
		if got, want := nameIsClean(s), runesAreClean(s); got != want {
			t.Fatalf("nameIsClean(%q) = %v, rune by rune %v", s, got, want)
		}
	}
}
