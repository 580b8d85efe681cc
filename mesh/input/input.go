// Package input defines the immutable snapshot of user intent that every
// translator reads: Gateway API objects, the core objects they refer to, and
// (later) policy objects. Providers build it — the file provider from a
// directory of YAML, the Kubernetes provider from informers — and the same
// pure translation code consumes it, so standalone mode and Kubernetes mode
// cannot drift apart.
//
// A Snapshot is never mutated after a provider publishes it: translators
// read it from any goroutine without locks. Slices are sorted by namespace
// then name, so equal intent yields byte-identical translation output.
package input

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Snapshot is one consistent view of everything the translators read.
type Snapshot struct {
	GatewayClasses  []*gwv1.GatewayClass
	Gateways        []*gwv1.Gateway
	HTTPRoutes      []*gwv1.HTTPRoute
	ReferenceGrants []*gwv1.ReferenceGrant
	Services        []*corev1.Service
	EndpointSlices  []*discoveryv1.EndpointSlice
	Secrets         []*corev1.Secret
	Namespaces      []*corev1.Namespace
}

// Key names an object of one kind.
type Key = types.NamespacedName
