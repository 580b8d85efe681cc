package input

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"iter"
	"reflect"
	"unsafe"

	"k8s.io/apimachinery/pkg/runtime"
)

// Hash is the content hash of an input object: SHA-256, truncated to 128
// bits, of the object's JSON encoding. encoding/json writes struct fields
// in declaration order and map keys sorted, so equal content gives equal
// hashes in any process, and any change to any field (spec, metadata,
// status) a new one. It is the start of the one change-detection scheme
// that runs from the input to the proxy (see "Change detection" in the
// mesh/ir package documentation).
type Hash [16]byte

// HashObject computes obj's content hash. Providers call it once per
// object as the object enters (the file provider when it decodes a
// document, the Kubernetes provider when an informer hands over a new
// version) and record the result in the snapshot (Snapshot.RecordHash).
func HashObject(obj runtime.Object) Hash {
	data, err := json.Marshal(obj)
	if err != nil {
		// The API types always marshal; should one ever not, hash
		// something that changes with the object's address so the
		// object is never taken for an unchanged one.
		data = fmt.Appendf(nil, "unmarshalable %T %p: %v", obj, obj, err)
	}
	sum := sha256.Sum256(data)
	return Hash(sum[:16])
}

// RecordHash records h as obj's content hash. Providers call it while they
// assemble a snapshot, before they publish it; s must not be in use
// elsewhere.
func (s *Snapshot) RecordHash(obj runtime.Object, h Hash) {
	p := address(obj)
	if p == nil {
		return
	}
	if s.hashes == nil {
		s.hashes = map[unsafe.Pointer]Hash{}
	}
	s.hashes[p] = h
}

// RecordedHash returns the hash recorded for obj, if one was (never on a
// nil Snapshot).
func (s *Snapshot) RecordedHash(obj runtime.Object) (Hash, bool) {
	if s == nil {
		return Hash{}, false
	}
	h, ok := s.hashes[address(obj)]
	return h, ok
}

// HashOf returns obj's content hash: the one recorded when obj entered,
// or, for an object s does not record (a snapshot assembled by hand, or an
// object swapped into a copy of a snapshot), computed now. The record is
// found by the object itself, so a copy of a snapshot with one object
// replaced never yields the replaced object's hash. It never modifies s,
// so concurrent readers are safe.
func (s *Snapshot) HashOf(obj runtime.Object) Hash {
	if h, ok := s.RecordedHash(obj); ok {
		return h
	}
	return HashObject(obj)
}

// ObjectHash is s.HashOf(obj) for a typed object: the record is found by
// the object's address directly, several times faster than through an
// interface, for consumers that look up every object of a snapshot on
// every translation.
func ObjectHash[E any, T interface {
	*E
	runtime.Object
}](s *Snapshot, obj T) Hash {
	if h, ok := s.hashes[unsafe.Pointer(obj)]; ok {
		return h
	}
	return HashObject(obj)
}

// address is the address of the object obj points to, nil for none.
func address(obj runtime.Object) unsafe.Pointer {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	return v.UnsafePointer()
}

// HashesOf lists the content hashes of objs, in order.
func HashesOf[E any, T interface {
	*E
	runtime.Object
}](s *Snapshot, objs []T) []Hash {
	out := make([]Hash, len(objs))
	for i, o := range objs {
		out[i] = ObjectHash(s, o)
	}
	return out
}

// HashesMatch reports whether objs have the content hashes hs, in order.
// It allocates nothing, for callers that check this on every snapshot.
func HashesMatch[E any, T interface {
	*E
	runtime.Object
}](s *Snapshot, hs []Hash, objs []T) bool {
	if len(hs) != len(objs) {
		return false
	}
	for i, o := range objs {
		if ObjectHash(s, o) != hs[i] {
			return false
		}
	}
	return true
}

// Objects lists every object of s, kind after kind.
func (s *Snapshot) Objects() iter.Seq[runtime.Object] {
	return func(yield func(runtime.Object) bool) {
		_ = yieldAll(yield, s.GatewayClasses) && yieldAll(yield, s.Gateways) &&
			yieldAll(yield, s.HTTPRoutes) && yieldAll(yield, s.GRPCRoutes) &&
			yieldAll(yield, s.TLSRoutes) && yieldAll(yield, s.TCPRoutes) &&
			yieldAll(yield, s.UDPRoutes) && yieldAll(yield, s.ListenerSets) && yieldAll(yield, s.ReferenceGrants) &&
			yieldAll(yield, s.BackendTLSPolicies) && yieldAll(yield, s.ConfigMaps) &&
			yieldAll(yield, s.Services) && yieldAll(yield, s.EndpointSlices) &&
			yieldAll(yield, s.Secrets) && yieldAll(yield, s.Namespaces) &&
			yieldAll(yield, s.Pods) && yieldAll(yield, s.NetworkPolicies) &&
			yieldAll(yield, s.CiliumNetworkPolicies) && yieldAll(yield, s.CiliumClusterwideNetworkPolicies) &&
			yieldAll(yield, s.CiliumEnvoyConfigs) && yieldAll(yield, s.CiliumClusterwideEnvoyConfigs) &&
			yieldAll(yield, s.GatewayClassConfigs) &&
			yieldAll(yield, s.Nodes) && yieldAll(yield, s.ServiceCIDRs)
	}
}

func yieldAll[T runtime.Object](yield func(runtime.Object) bool, objs []T) bool {
	for _, o := range objs {
		if !yield(o) {
			return false
		}
	}
	return true
}

// SameContent reports whether a and b hold objects of the same content in
// the same order, comparing content hashes (no field is compared).
func SameContent(a, b *Snapshot) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return sameHashes(a, b, a.GatewayClasses, b.GatewayClasses) &&
		sameHashes(a, b, a.Gateways, b.Gateways) &&
		sameHashes(a, b, a.HTTPRoutes, b.HTTPRoutes) &&
		sameHashes(a, b, a.GRPCRoutes, b.GRPCRoutes) &&
		sameHashes(a, b, a.TLSRoutes, b.TLSRoutes) &&
		sameHashes(a, b, a.TCPRoutes, b.TCPRoutes) &&
		sameHashes(a, b, a.UDPRoutes, b.UDPRoutes) &&
		sameHashes(a, b, a.ListenerSets, b.ListenerSets) &&
		sameHashes(a, b, a.ReferenceGrants, b.ReferenceGrants) &&
		sameHashes(a, b, a.BackendTLSPolicies, b.BackendTLSPolicies) &&
		sameHashes(a, b, a.ConfigMaps, b.ConfigMaps) &&
		sameHashes(a, b, a.Services, b.Services) &&
		sameHashes(a, b, a.EndpointSlices, b.EndpointSlices) &&
		sameHashes(a, b, a.Secrets, b.Secrets) &&
		sameHashes(a, b, a.Namespaces, b.Namespaces) &&
		sameHashes(a, b, a.Pods, b.Pods) &&
		sameHashes(a, b, a.NetworkPolicies, b.NetworkPolicies) &&
		sameHashes(a, b, a.CiliumNetworkPolicies, b.CiliumNetworkPolicies) &&
		sameHashes(a, b, a.CiliumClusterwideNetworkPolicies, b.CiliumClusterwideNetworkPolicies) &&
		sameHashes(a, b, a.CiliumEnvoyConfigs, b.CiliumEnvoyConfigs) &&
		sameHashes(a, b, a.CiliumClusterwideEnvoyConfigs, b.CiliumClusterwideEnvoyConfigs) &&
		sameHashes(a, b, a.GatewayClassConfigs, b.GatewayClassConfigs) &&
		sameHashes(a, b, a.Nodes, b.Nodes) &&
		sameHashes(a, b, a.ServiceCIDRs, b.ServiceCIDRs)
}

func sameHashes[E any, T interface {
	*E
	runtime.Object
}](a, b *Snapshot, x, y []T) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if ObjectHash(a, x[i]) != ObjectHash(b, y[i]) {
			return false
		}
	}
	return true
}
