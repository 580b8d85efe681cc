package gateway

import (
	"flag"
	"io"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// TestIngressFlags parses the flags the chart's ingressController values
// render into.
func TestIngressFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want IngressOptions
		bad  bool
	}{
		{name: "defaults", want: IngressOptions{ClassName: IngressClassName}},
		{name: "chart values", args: []string{"--enable-ingress-controller=true", "--ingress-default", "--ingress-loadbalancer-mode=shared",
			"--ingress-enforce-https", "--ingress-default-certificate=kube-system/wildcard"},
			want: IngressOptions{ClassName: IngressClassName, Default: true, Mode: LoadBalancerShared, EnforceHTTPS: true,
				DefaultCertificate: &input.Key{Namespace: "kube-system", Name: "wildcard"}}},
		{name: "host network", args: []string{"--ingress-host-network", "--ingress-host-network-shared-port=18080"},
			want: IngressOptions{ClassName: IngressClassName, HostNetwork: true, SharedListenerPort: 18080}},
		{name: "bad shared port", args: []string{"--ingress-host-network-shared-port=65536"}, bad: true},
		{name: "signed shared port", args: []string{"--ingress-host-network-shared-port=+80"}, bad: true},
		{name: "disabled", args: []string{"--enable-ingress-controller=false"}, want: IngressOptions{ClassName: IngressClassName, Disabled: true}},
		{name: "bad bool", args: []string{"--enable-ingress-controller=maybe"}, bad: true},
		{name: "bad mode", args: []string{"--ingress-loadbalancer-mode=per-node"}, bad: true},
		{name: "bad certificate", args: []string{"--ingress-default-certificate=wildcard"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o IngressOptions
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.RegisterFlags(fs)
			err := fs.Parse(tc.args)
			if tc.bad {
				if err == nil {
					t.Fatalf("%q parsed: %+v", tc.args, o)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, o, cmpopts.EquateComparable(netip.Addr{})); d != "" {
				t.Errorf("options (-want +got):\n%s", d)
			}
		})
	}
}

// TestIngressDisabled: with the controller off, an Ingress of our class
// (and one that names none while we are the default) is not ours.
func TestIngressDisabled(t *testing.T) {
	class := IngressClassName
	in := &input.Snapshot{Ingresses: []*networkingv1.Ingress{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "named"}, Spec: networkingv1.IngressSpec{IngressClassName: &class}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "unnamed"}},
	}}
	if got := ownIngresses(&IngressOptions{Default: true}, in); len(got) != 2 {
		t.Fatalf("enabled: %d Ingresses ours, want 2", len(got))
	}
	if got := ownIngresses(&IngressOptions{Default: true, Disabled: true}, in); len(got) != 0 {
		t.Fatalf("disabled: %d Ingresses ours, want none", len(got))
	}
}

// TestParsePort: port annotations and flags are decimal digits only, 1 to
// 65535, no sign, space or leading zero.
func TestParsePort(t *testing.T) {
	for v, want := range map[string]int32{"1": 1, "80": 80, "8080": 8080, "65535": 65535} {
		if got, ok := parsePort(v); !ok || got != want {
			t.Errorf("parsePort(%q) = %d, %v; want %d", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "0", "00", "080", "+80", "-1", " 80", "80 ", "65536", "99999", "123456", "8o", "0x50", "1e3", "８０"} {
		if got, ok := parsePort(v); ok {
			t.Errorf("parsePort(%q) = %d, accepted", v, got)
		}
	}
}
