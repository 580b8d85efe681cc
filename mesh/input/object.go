package input

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
)

// Kind is the kind of a decoded object, e.g. "HTTPRoute".
type Kind string

// The kinds Decode understands.
const (
	KindGatewayClass     Kind = "GatewayClass"
	KindGateway          Kind = "Gateway"
	KindHTTPRoute        Kind = "HTTPRoute"
	KindGRPCRoute        Kind = "GRPCRoute"
	KindTLSRoute         Kind = "TLSRoute"
	KindTCPRoute         Kind = "TCPRoute"
	KindUDPRoute         Kind = "UDPRoute"
	KindListenerSet      Kind = "ListenerSet"
	KindReferenceGrant   Kind = "ReferenceGrant"
	KindBackendTLSPolicy Kind = "BackendTLSPolicy"
	KindConfigMap        Kind = "ConfigMap"
	KindService          Kind = "Service"
	KindEndpointSlice    Kind = "EndpointSlice"
	KindSecret           Kind = "Secret"
	KindNamespace        Kind = "Namespace"

	KindPod                            Kind = "Pod"
	KindNetworkPolicy                  Kind = "NetworkPolicy"
	KindCiliumNetworkPolicy            Kind = "CiliumNetworkPolicy"
	KindCiliumClusterwideNetworkPolicy Kind = "CiliumClusterwideNetworkPolicy"

	KindCiliumEnvoyConfig            Kind = "CiliumEnvoyConfig"
	KindCiliumClusterwideEnvoyConfig Kind = "CiliumClusterwideEnvoyConfig"

	KindCiliumGatewayClassConfig Kind = "CiliumGatewayClassConfig"

	KindIngress      Kind = "Ingress"
	KindIngressClass Kind = "IngressClass"
)

// Object is one decoded object with where it came from.
type Object struct {
	Origin Origin
	Kind   Kind
	// Key is the object's namespace and name; Namespace is empty for
	// cluster-scoped kinds.
	Key Key
	// Obj is the typed object: *gwv1.Gateway, *corev1.Service, ... Its
	// TypeMeta is set to the version the Snapshot holds (v1beta1 Gateway API
	// objects read as v1).
	Obj runtime.Object
	// Hash is Obj's content hash (HashObject), computed by Decode; Build
	// computes it for an Object that comes without one.
	Hash Hash
}

// Origin says where a decoded object came from.
type Origin struct {
	// Source is the name the caller passed to Decode, usually a file path.
	Source string
	// Doc is the 1-based position of the document in the stream.
	Doc int
	// Line is the 1-based line on which the document starts.
	Line int
	// Item is the index of the object in a List's items, or -1.
	Item int
}

// String renders the origin as "file.yaml:12 (document 3)".
func (o Origin) String() string {
	s := fmt.Sprintf("%s:%d (document %d", o.Source, o.Line, o.Doc)
	if o.Item >= 0 {
		s += fmt.Sprintf(", items[%d]", o.Item)
	}
	return s + ")"
}

// DecodeError is one problem with one document of a stream. Decode and
// Build join these with errors.Join.
type DecodeError struct {
	Origin Origin
	// Kind and Name identify the object when they could be read.
	Kind Kind
	Name Key
	// Field is the path of the offending field when known, e.g.
	// "metadata.name".
	Field string
	Err   error
}

func (e *DecodeError) Error() string {
	s := e.Origin.String() + ": "
	if e.Kind != "" {
		s += string(e.Kind)
		if e.Name.Name != "" {
			s += " " + keyString(e.Name)
		}
		s += ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// keyString renders "namespace/name", or just "name" for cluster-scoped
// objects.
func keyString(k Key) string {
	if k.Namespace == "" {
		return k.Name
	}
	return k.Namespace + "/" + k.Name
}
