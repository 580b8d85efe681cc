package policy

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestGoldenIngress compiles testdata/ingress/<case>.in.yaml with the
// node's ingress endpoint (Options.IngressEndpoint).
func TestGoldenIngress(t *testing.T) {
	opts := testOptions()
	opts.IngressEndpoint = true
	runGolden(t, filepath.Join("testdata", "ingress"), opts)
}

// TestIngressVerdicts checks who passes the two check points of the
// ingress endpoint for the AT-ING-06 policies: an outside client
// (world), the one allowed outside address, an in-cluster Pod, the host,
// and the backends behind the ingress.
func TestIngressVerdicts(t *testing.T) {
	outside, allowedOutside := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("172.18.0.1")
	client, host, details := netip.MustParseAddr("10.0.7.2"), netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("10.0.7.1")
	coredns := netip.MustParseAddr("10.0.7.3")
	type flow struct {
		peer netip.Addr
		port uint32
		want bool
	}
	cases := []struct {
		file            string
		noPolicy        bool
		ingress, egress []flow
		egressUDP       []flow
		enforcedEgress  bool
		denyAllIngress  bool
		denyAllEgress   bool
		ingressDisabled bool
	}{
		{file: "none", noPolicy: true},
		{file: "external-lockdown",
			ingress: []flow{{outside, 80, false}, {allowedOutside, 80, false}, {client, 80, true}, {host, 443, true}},
			egress:  []flow{{details, 9080, true}, {outside, 80, true}}},
		{file: "allow-cidr",
			ingress: []flow{{outside, 80, false}, {allowedOutside, 80, true}, {client, 80, true}}},
		// Its DNS rule (every name) is the L4 allow of 53/UDP to kube-dns:
		// the egress is in default deny, not closed.
		{file: "default-deny", enforcedEgress: true,
			ingress:   []flow{{outside, 80, false}, {client, 80, true}},
			egress:    []flow{{details, 9080, false}, {coredns, 53, false}},
			egressUDP: []flow{{coredns, 53, true}, {coredns, 54, false}, {details, 53, false}}},
		{file: "allow-ingress-egress", enforcedEgress: true,
			egress: []flow{{details, 9080, true}, {outside, 80, false}}},
		{file: "deny-l7", denyAllIngress: true, enforcedEgress: true,
			ingress: []flow{{outside, 80, false}, {client, 80, false}},
			egress:  []flow{{details, 9080, true}, {client, 8080, false}, {outside, 80, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			in := filepath.Join("testdata", "ingress", tc.file+".in.yaml")
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			opts := testOptions()
			opts.IngressEndpoint = true
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			res := c.Compile(decodeInput(t, in, data))
			check(t, res)
			for _, row := range res.Datapath.Entries {
				if row.Subject == 8 {
					t.Errorf("datapath row for the virtual ingress endpoint: %+v", row)
				}
			}
			if tc.noPolicy {
				if res.Ingress != nil {
					t.Fatalf("ingress policy without a policy selecting it: %+v", res.Ingress)
				}
				return
			}
			if res.Ingress == nil {
				t.Fatal("no ingress policy")
			}
			if got := res.Ingress.Ingress.DenyAll; got != tc.denyAllIngress {
				t.Errorf("ingress denyAll = %v, want %v", got, tc.denyAllIngress)
			}
			if got := res.Ingress.Egress.DenyAll; got != tc.denyAllEgress {
				t.Errorf("egress denyAll = %v, want %v", got, tc.denyAllEgress)
			}
			if got := res.Ingress.Egress.Enforced; tc.egress != nil && got != tc.enforcedEgress {
				t.Errorf("egress enforced = %v, want %v", got, tc.enforcedEgress)
			}
			for _, d := range []struct {
				name  string
				dir   *ir.IngressDirection
				proto string
				flows []flow
			}{{"ingress", &res.Ingress.Ingress, ir.IngressProtoTCP, tc.ingress}, {"egress", &res.Ingress.Egress, ir.IngressProtoTCP, tc.egress},
				{"egress", &res.Ingress.Egress, ir.IngressProtoUDP, tc.egressUDP}} {
				for _, f := range d.flows {
					if got := d.dir.Allows(f.peer, d.proto, f.port); got != f.want {
						t.Errorf("%s %s %s:%d allowed = %v, want %v", d.name, d.proto, f.peer, f.port, got, f.want)
					}
				}
			}
			for _, ps := range res.Policies {
				if ps.Kind == KindCCNP && ps.Selected == 0 {
					t.Errorf("%s selects nothing; the ingress endpoint counts", ps.Name)
				}
			}
		})
	}
}
