package ir

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func validIngressPolicy() *IngressPolicy {
	return &IngressPolicy{
		Ingress: IngressDirection{Enforced: true,
			Allow: []*IngressRule{{Name: "ccnp/lockdown/ingress/0", Protocol: IngressProtoAny,
				Peers: PeerSet{Terms: []AddressTerm{{Prefix: "10.0.0.0/8", Except: []string{"10.9.0.0/16"}}}}}},
			Deny: []*IngressRule{{Name: "ccnp/lockdown/ingressDeny/0", Protocol: IngressProtoTCP, Port: 443,
				Peers: PeerSet{Terms: []AddressTerm{{Prefix: "10.1.0.0/16"}}}}}},
	}
}

func TestIngressPolicyValidate(t *testing.T) {
	if err := (&Config{IngressPolicy: validIngressPolicy()}).Validate(); err != nil {
		t.Fatalf("valid policy rejected: %v", err)
	}
	cases := []struct {
		name   string
		break_ func(p *IngressPolicy)
		want   string
	}{
		{"rules without enforcement", func(p *IngressPolicy) { p.Ingress.Enforced = false }, "not enforced"},
		{"deny all without enforcement", func(p *IngressPolicy) { p.Egress.DenyAll = true }, "not enforced"},
		{"nil rule", func(p *IngressPolicy) { p.Ingress.Allow = append(p.Ingress.Allow, nil) }, "nil rule"},
		{"empty name", func(p *IngressPolicy) { p.Ingress.Allow[0].Name = "" }, "allow[0].name"},
		{"protocol", func(p *IngressPolicy) { p.Ingress.Deny[0].Protocol = "ICMP" }, "unknown protocol"},
		{"port", func(p *IngressPolicy) { p.Ingress.Deny[0].Port = 70000 }, "out of range"},
		{"no peers", func(p *IngressPolicy) { p.Ingress.Allow[0].Peers = PeerSet{} }, "exactly one of any and terms"},
		{"unmasked prefix", func(p *IngressPolicy) { p.Ingress.Allow[0].Peers.Terms[0].Prefix = "10.0.0.1/8" }, "not a masked prefix"},
		{"except outside", func(p *IngressPolicy) { p.Ingress.Allow[0].Peers.Terms[0].Except[0] = "192.168.0.0/16" }, "inside 10.0.0.0/8"},
		{"duplicate", func(p *IngressPolicy) {
			p.Ingress.Allow = append(p.Ingress.Allow, p.Ingress.Allow[0])
		}, "duplicate rule"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validIngressPolicy()
			tc.break_(p)
			err := (&Config{IngressPolicy: p}).Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestIngressDirectionAllows(t *testing.T) {
	p := validIngressPolicy()
	a := netip.MustParseAddr
	for _, tc := range []struct {
		dir   *IngressDirection
		peer  string
		proto string
		port  uint32
		want  bool
	}{
		{&p.Ingress, "10.2.3.4", IngressProtoTCP, 80, true},
		{&p.Ingress, "10.9.3.4", IngressProtoTCP, 80, false},       // carved out
		{&p.Ingress, "10.1.3.4", IngressProtoTCP, 443, false},      // deny wins
		{&p.Ingress, "10.1.3.4", IngressProtoTCP, 80, true},        // deny is for 443 only
		{&p.Ingress, "::ffff:10.2.3.4", IngressProtoUDP, 53, true}, // mapped address
		{&p.Ingress, "192.0.2.1", IngressProtoTCP, 80, false},      // nothing allows
		{&p.Egress, "192.0.2.1", IngressProtoTCP, 80, true},        // not enforced
		{&IngressDirection{Enforced: true, DenyAll: true, Allow: []*IngressRule{{Name: "x", Protocol: IngressProtoAny, Peers: PeerSet{Any: true}}}}, "10.2.3.4", IngressProtoTCP, 80, false},
		{nil, "10.2.3.4", IngressProtoTCP, 80, true},
	} {
		if got := tc.dir.Allows(a(tc.peer), tc.proto, tc.port); got != tc.want {
			t.Errorf("%s %s/%d: got %v, want %v", tc.peer, tc.proto, tc.port, got, tc.want)
		}
	}
}
