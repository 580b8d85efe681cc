package gateway

import (
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// Ingress addresses come from the same allocator and pool as Gateway
// addresses, so the two never collide: every Ingress load balancer is
// presented to it as a stand-in Gateway. Stand-in keys live in namespaces
// no Kubernetes object can have (a colon is not allowed in a namespace
// name), so they never collide with a real Gateway's key.

// SharedIngressKey is the stand-in key of the shared Ingress listener set.
var SharedIngressKey = input.Key{Namespace: "ingress:", Name: "shared"}

// IngressAddressKey is the stand-in key of a dedicated Ingress.
func IngressAddressKey(ing input.Key) input.Key {
	return input.Key{Namespace: "ingress:" + ing.Namespace, Name: ing.Name}
}

// IngressAddressRequests returns one stand-in Gateway per Ingress load
// balancer the snapshot needs: each dedicated Ingress of our class, and
// the shared set when some Ingress of ours is shared. A stand-in carries
// its Ingress's creation time (older wins a contested address) and, as a
// status address, the address its Ingress status already shows, so an
// assignment survives a restart. The shared set is as old as its oldest
// Ingress and keeps the first address one of them shows.
func IngressAddressRequests(in *input.Snapshot, opts IngressOptions) []*gwv1.Gateway {
	var out []*gwv1.Gateway
	var shared *gwv1.Gateway
	for _, ing := range ownIngresses(&opts, in) {
		mode, ok := ingressMode(&opts, ing)
		if !ok {
			continue // not served
		}
		var addrs []gwv1.GatewayStatusAddress
		for _, lb := range ing.Status.LoadBalancer.Ingress {
			if _, err := netip.ParseAddr(lb.IP); err == nil {
				addrs = append(addrs, gwv1.GatewayStatusAddress{Type: ptr(gwv1.IPAddressType), Value: lb.IP})
			}
		}
		if mode == LoadBalancerShared {
			if shared == nil {
				shared = &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: SharedIngressKey.Namespace, Name: SharedIngressKey.Name, CreationTimestamp: ing.CreationTimestamp}}
				out = append(out, shared)
			}
			if ing.CreationTimestamp.Before(&shared.CreationTimestamp) {
				shared.CreationTimestamp = ing.CreationTimestamp
			}
			if len(shared.Status.Addresses) == 0 {
				shared.Status.Addresses = addrs
			}
			continue
		}
		k := IngressAddressKey(keyOf(ing))
		out = append(out, &gwv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name, CreationTimestamp: ing.CreationTimestamp},
			Status:     gwv1.GatewayStatus{Addresses: addrs},
		})
	}
	return out
}

// UseIngressAddresses takes the Ingress addresses out of an assignment
// made over Gateways and IngressAddressRequests' stand-ins.
func (o *IngressOptions) UseIngressAddresses(assigned map[input.Key]netip.Addr) {
	o.Addresses = map[input.Key]netip.Addr{}
	o.SharedAddress = assigned[SharedIngressKey]
	for k, a := range assigned {
		if ns, ok := cutIngressNamespace(k.Namespace); ok && k != SharedIngressKey {
			o.Addresses[input.Key{Namespace: ns, Name: k.Name}] = a
		}
	}
}

// IngressOfAddressKey returns the Ingress a dedicated stand-in key (from
// IngressAddressRequests) stands for; ok is false for the shared set and
// for keys of real Gateways.
func IngressOfAddressKey(k input.Key) (ing input.Key, ok bool) {
	if k == SharedIngressKey {
		return input.Key{}, false
	}
	ns, ok := cutIngressNamespace(k.Namespace)
	return input.Key{Namespace: ns, Name: k.Name}, ok
}

func cutIngressNamespace(ns string) (string, bool) {
	const p = "ingress:"
	if len(ns) > len(p) && ns[:len(p)] == p {
		return ns[len(p):], true
	}
	return "", false
}
