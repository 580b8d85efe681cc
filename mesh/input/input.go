package input

import (
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
)

// Snapshot is one consistent view of everything the translators read.
type Snapshot struct {
	GatewayClasses []*gwv1.GatewayClass
	Gateways       []*gwv1.Gateway
	HTTPRoutes     []*gwv1.HTTPRoute
	GRPCRoutes     []*gwv1.GRPCRoute
	TLSRoutes      []*gwv1.TLSRoute
	TCPRoutes      []*gwv1.TCPRoute
	UDPRoutes      []*gwv1.UDPRoute
	// ListenerSets add listeners to the Gateways that allow them.
	ListenerSets    []*gwv1.ListenerSet
	ReferenceGrants []*gwv1.ReferenceGrant
	// BackendTLSPolicies say how Gateways speak TLS to Services; the
	// ConfigMaps hold their CA certificates (and only those matter).
	BackendTLSPolicies []*gwv1.BackendTLSPolicy
	ConfigMaps         []*corev1.ConfigMap
	Services           []*corev1.Service
	EndpointSlices     []*discoveryv1.EndpointSlice
	Secrets            []*corev1.Secret
	Namespaces         []*corev1.Namespace

	// Ingresses of every class and the IngressClasses that say which
	// are ours; the gateway translator ignores the others.
	Ingresses      []*networkingv1.Ingress
	IngressClasses []*networkingv1.IngressClass

	// Network policy and the workloads it is about. Pods carry the labels
	// identities are derived from and, in status.podIP(s), the addresses
	// the ipcache maps to them; in standalone mode they declare workloads
	// that run outside Kubernetes.
	Pods                             []*corev1.Pod
	NetworkPolicies                  []*networkingv1.NetworkPolicy
	CiliumNetworkPolicies            []*ciliumv2.CiliumNetworkPolicy
	CiliumClusterwideNetworkPolicies []*ciliumv2.CiliumClusterwideNetworkPolicy
	// CiliumEnvoyConfigs and CiliumClusterwideEnvoyConfigs carry Envoy
	// resources users wrote (mesh/envoyconfig).
	CiliumEnvoyConfigs            []*ciliumv2.CiliumEnvoyConfig
	CiliumClusterwideEnvoyConfigs []*ciliumv2.CiliumClusterwideEnvoyConfig
	// GatewayClassConfigs are the parameters GatewayClasses may name in
	// spec.parametersRef (cilium.io/v2alpha1).
	GatewayClassConfigs []*ciliumv2alpha1.CiliumGatewayClassConfig
	// Nodes are the cluster's Nodes (Kubernetes mode with policy): the
	// addresses of every other node map to the reserved remote-node
	// identity.
	Nodes []*corev1.Node
	// ServiceCIDRs are the cluster's Service address ranges (Kubernetes
	// mode with policy): under egress enforcement a Pod's flow into them
	// that socket-level Service translation did not rewrite is dropped.
	ServiceCIDRs []*networkingv1.ServiceCIDR

	// hashes holds the content hash of objects (HashObject), computed
	// once as each entered its provider (RecordHash), by the object's
	// address: an object is never modified and, held here, never freed,
	// so its address names it. Objects it does not hold are hashed when
	// asked (HashOf).
	hashes map[unsafe.Pointer]Hash
}

// Key names an object of one kind.
type Key = types.NamespacedName
