package input

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
)

// object is what every supported kind's Go type implements.
type object interface {
	runtime.Object
	metav1.Object
}

// kindInfo describes how to decode one apiVersion/kind.
type kindInfo struct {
	kind       Kind
	namespaced bool
	// apiVersion is what the decoded object's TypeMeta is set to (v1beta1
	// Gateway API objects are stored as v1).
	apiVersion string
	newObj     func() object
}

type gvk struct{ apiVersion, kind string }

const (
	gatewayV1      = "gateway.networking.k8s.io/v1"
	gatewayV1beta1 = "gateway.networking.k8s.io/v1beta1"
	// The experimental channel still serves the L4 routes' alpha versions
	// (TLSRoute v1alpha2 and v1alpha3, TCPRoute and UDPRoute v1alpha2).
	// Their wire schema is the v1 one — the alpha Go types are aliases of
	// the v1 rules and status — so they decode into v1 and are stored as v1,
	// as v1beta1 objects are.
	gatewayV1alpha2 = "gateway.networking.k8s.io/v1alpha2"
	gatewayV1alpha3 = "gateway.networking.k8s.io/v1alpha3"
)

// kinds lists every apiVersion/kind Decode accepts. Adding a kind here and
// a field to Snapshot (filled in Build) is all a new kind needs.
var kinds = map[gvk]kindInfo{}

func register(apiVersions []string, info kindInfo) {
	for _, v := range apiVersions {
		kinds[gvk{v, string(info.kind)}] = info
	}
}

func init() {
	gw := []string{gatewayV1, gatewayV1beta1}
	register(gw, kindInfo{kind: KindGatewayClass, apiVersion: gatewayV1, newObj: func() object { return &gwv1.GatewayClass{} }})
	register(gw, kindInfo{kind: KindGateway, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.Gateway{} }})
	register(gw, kindInfo{kind: KindHTTPRoute, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.HTTPRoute{} }})
	register([]string{gatewayV1, gatewayV1alpha2, gatewayV1alpha3}, kindInfo{kind: KindTLSRoute, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.TLSRoute{} }})
	register([]string{gatewayV1, gatewayV1alpha2}, kindInfo{kind: KindUDPRoute, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.UDPRoute{} }})
	register([]string{gatewayV1, gatewayV1alpha2}, kindInfo{kind: KindTCPRoute, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.TCPRoute{} }})
	register([]string{gatewayV1}, kindInfo{kind: KindListenerSet, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.ListenerSet{} }})
	register([]string{gatewayV1}, kindInfo{kind: KindGRPCRoute, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.GRPCRoute{} }})
	register(gw, kindInfo{kind: KindReferenceGrant, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.ReferenceGrant{} }})
	register([]string{"v1"}, kindInfo{kind: KindService, namespaced: true, apiVersion: "v1", newObj: func() object { return &corev1.Service{} }})
	register([]string{gatewayV1}, kindInfo{kind: KindBackendTLSPolicy, namespaced: true, apiVersion: gatewayV1, newObj: func() object { return &gwv1.BackendTLSPolicy{} }})
	register([]string{"v1"}, kindInfo{kind: KindConfigMap, namespaced: true, apiVersion: "v1", newObj: func() object { return &corev1.ConfigMap{} }})
	register([]string{"v1"}, kindInfo{kind: KindSecret, namespaced: true, apiVersion: "v1", newObj: func() object { return &corev1.Secret{} }})
	register([]string{"v1"}, kindInfo{kind: KindNamespace, apiVersion: "v1", newObj: func() object { return &corev1.Namespace{} }})
	register([]string{"discovery.k8s.io/v1"}, kindInfo{kind: KindEndpointSlice, namespaced: true, apiVersion: "discovery.k8s.io/v1", newObj: func() object { return &discoveryv1.EndpointSlice{} }})
	register([]string{"v1"}, kindInfo{kind: KindPod, namespaced: true, apiVersion: "v1", newObj: func() object { return &corev1.Pod{} }})
	register([]string{"networking.k8s.io/v1"}, kindInfo{kind: KindNetworkPolicy, namespaced: true, apiVersion: "networking.k8s.io/v1", newObj: func() object { return &networkingv1.NetworkPolicy{} }})
	register([]string{"networking.k8s.io/v1"}, kindInfo{kind: KindIngress, namespaced: true, apiVersion: "networking.k8s.io/v1", newObj: func() object { return &networkingv1.Ingress{} }})
	register([]string{"networking.k8s.io/v1"}, kindInfo{kind: KindIngressClass, apiVersion: "networking.k8s.io/v1", newObj: func() object { return &networkingv1.IngressClass{} }})
	cilium := ciliumv2.SchemeGroupVersion.String()
	register([]string{cilium}, kindInfo{kind: KindCiliumNetworkPolicy, namespaced: true, apiVersion: cilium, newObj: func() object { return &ciliumv2.CiliumNetworkPolicy{} }})
	register([]string{cilium}, kindInfo{kind: KindCiliumEnvoyConfig, namespaced: true, apiVersion: cilium, newObj: func() object { return &ciliumv2.CiliumEnvoyConfig{} }})
	register([]string{cilium}, kindInfo{kind: KindCiliumClusterwideEnvoyConfig, apiVersion: cilium, newObj: func() object { return &ciliumv2.CiliumClusterwideEnvoyConfig{} }})
	ciliumAlpha := ciliumv2alpha1.SchemeGroupVersion.String()
	register([]string{ciliumAlpha}, kindInfo{kind: KindCiliumGatewayClassConfig, namespaced: true, apiVersion: ciliumAlpha, newObj: func() object { return &ciliumv2alpha1.CiliumGatewayClassConfig{} }})
	register([]string{cilium}, kindInfo{kind: KindCiliumClusterwideNetworkPolicy, apiVersion: cilium, newObj: func() object { return &ciliumv2.CiliumClusterwideNetworkPolicy{} }})
}
