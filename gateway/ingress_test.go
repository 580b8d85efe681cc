package gateway

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// Golden inputs set Ingress options with annotations on a Namespace named
// test-options (it has no other effect): test.nodemesh.io/ingress-mode,
// .../ingress-default-class ("true"), .../ingress-enforce-https ("true")
// and .../ingress-default-certificate ("<ns>/<name>"). Ingresses get
// test.nodemesh.io/address, else the next address of 127.0.20.0/24 in
// snapshot order (dedicated); the shared address is 127.0.20.254.
const testOptionsNamespace = "test-options"

// A malformed address annotation fails the test when strict, else means
// no address.
func testIngressOptions(t testing.TB, snap *input.Snapshot, strict bool) IngressOptions {
	opts := IngressOptions{Addresses: map[input.Key]netip.Addr{}, SharedAddress: netip.MustParseAddr("127.0.20.254")}
	for _, ns := range snap.Namespaces {
		if ns.Name != testOptionsNamespace {
			continue
		}
		a := ns.Annotations
		opts.Mode = LoadBalancerMode(a["test.nodemesh.io/ingress-mode"])
		opts.Default = a["test.nodemesh.io/ingress-default-class"] == "true"
		opts.EnforceHTTPS = a["test.nodemesh.io/ingress-enforce-https"] == "true"
		if v := a["test.nodemesh.io/ingress-host-network"]; v != "" {
			// Every load balancer on the one node address, as the
			// controller and each node's agent assign them.
			node := netip.MustParseAddr(v)
			opts.HostNetwork, opts.SharedAddress = true, node
			if p, err := strconv.Atoi(a["test.nodemesh.io/ingress-shared-port"]); err == nil {
				opts.SharedListenerPort = int32(p)
			}
			for _, ing := range snap.Ingresses {
				opts.Addresses[keyOf(ing)] = node
			}
			return opts
		}
		if v := a["test.nodemesh.io/ingress-default-certificate"]; v != "" {
			ns, name, _ := strings.Cut(v, "/")
			opts.DefaultCertificate = &input.Key{Namespace: ns, Name: name}
		}
	}
	next := netip.MustParseAddr("127.0.20.1")
	for _, ing := range snap.Ingresses {
		k := keyOf(ing)
		if v, ok := ing.Annotations[addressAnnotation]; ok {
			if v == "none" {
				continue
			}
			a, err := netip.ParseAddr(v)
			if err != nil {
				if strict {
					t.Errorf("Ingress %s: %s: %v", k, addressAnnotation, err)
				}
				continue
			}
			opts.Addresses[k] = a
			continue
		}
		opts.Addresses[k] = next
		next = next.Next()
	}
	return opts
}
