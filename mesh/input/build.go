package input

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
)

// Build assembles a Snapshot from objects decoded from any number of
// sources. The kind and key of each object are read from Obj itself. Two
// objects with the same kind, namespace and name are an error naming both
// origins; so is an object of a type Decode does not produce. On error no
// Snapshot is returned. Build does not copy the objects: the caller must
// not modify them afterwards.
func Build(objs []Object) (*Snapshot, error) {
	s := &Snapshot{hashes: make(map[unsafe.Pointer]Hash, len(objs))}
	seen := make(map[objectID]Origin, len(objs))
	var errs []error
	for _, o := range objs {
		meta, ok := o.Obj.(metav1.Object)
		if !ok || reflect.ValueOf(o.Obj).IsNil() {
			errs = append(errs, &DecodeError{Origin: o.Origin, Kind: o.Kind, Name: o.Key, Err: fmt.Errorf("unsupported object type %T", o.Obj)})
			continue
		}
		kind := kindOf(o.Obj)
		key := Key{Namespace: meta.GetNamespace(), Name: meta.GetName()}
		if kind == "" {
			errs = append(errs, &DecodeError{Origin: o.Origin, Kind: o.Kind, Name: key, Err: fmt.Errorf("unsupported object type %T", o.Obj)})
			continue
		}
		id := objectID{kind, key}
		if prev, dup := seen[id]; dup {
			errs = append(errs, &DecodeError{Origin: o.Origin, Kind: kind, Name: key, Err: fmt.Errorf("duplicate object, also defined at %s", prev)})
			continue
		}
		seen[id] = o.Origin
		if o.Hash == (Hash{}) {
			o.Hash = HashObject(o.Obj)
		}
		s.RecordHash(o.Obj, o.Hash)
		switch v := o.Obj.(type) {
		case *gwv1.GatewayClass:
			s.GatewayClasses = append(s.GatewayClasses, v)
		case *gwv1.Gateway:
			s.Gateways = append(s.Gateways, v)
		case *gwv1.HTTPRoute:
			s.HTTPRoutes = append(s.HTTPRoutes, v)
		case *gwv1.GRPCRoute:
			s.GRPCRoutes = append(s.GRPCRoutes, v)
		case *gwv1.TLSRoute:
			s.TLSRoutes = append(s.TLSRoutes, v)
		case *gwv1.TCPRoute:
			s.TCPRoutes = append(s.TCPRoutes, v)
		case *gwv1.UDPRoute:
			s.UDPRoutes = append(s.UDPRoutes, v)
		case *gwv1.ListenerSet:
			s.ListenerSets = append(s.ListenerSets, v)
		case *gwv1.ReferenceGrant:
			s.ReferenceGrants = append(s.ReferenceGrants, v)
		case *gwv1.BackendTLSPolicy:
			s.BackendTLSPolicies = append(s.BackendTLSPolicies, v)
		case *corev1.ConfigMap:
			s.ConfigMaps = append(s.ConfigMaps, v)
		case *corev1.Service:
			s.Services = append(s.Services, v)
		case *discoveryv1.EndpointSlice:
			s.EndpointSlices = append(s.EndpointSlices, v)
		case *corev1.Secret:
			s.Secrets = append(s.Secrets, v)
		case *corev1.Namespace:
			s.Namespaces = append(s.Namespaces, v)
		case *corev1.Pod:
			s.Pods = append(s.Pods, v)
		case *networkingv1.NetworkPolicy:
			s.NetworkPolicies = append(s.NetworkPolicies, v)
		case *ciliumv2.CiliumNetworkPolicy:
			s.CiliumNetworkPolicies = append(s.CiliumNetworkPolicies, v)
		case *ciliumv2.CiliumClusterwideNetworkPolicy:
			s.CiliumClusterwideNetworkPolicies = append(s.CiliumClusterwideNetworkPolicies, v)
		case *ciliumv2.CiliumEnvoyConfig:
			s.CiliumEnvoyConfigs = append(s.CiliumEnvoyConfigs, v)
		case *ciliumv2.CiliumClusterwideEnvoyConfig:
			s.CiliumClusterwideEnvoyConfigs = append(s.CiliumClusterwideEnvoyConfigs, v)
		case *ciliumv2alpha1.CiliumGatewayClassConfig:
			s.GatewayClassConfigs = append(s.GatewayClassConfigs, v)
		case *networkingv1.Ingress:
			s.Ingresses = append(s.Ingresses, v)
		case *networkingv1.IngressClass:
			s.IngressClasses = append(s.IngressClasses, v)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sortByKey(s.GatewayClasses)
	sortByKey(s.Gateways)
	sortByKey(s.HTTPRoutes)
	sortByKey(s.GRPCRoutes)
	sortByKey(s.TLSRoutes)
	sortByKey(s.TCPRoutes)
	sortByKey(s.UDPRoutes)
	sortByKey(s.ListenerSets)
	sortByKey(s.ReferenceGrants)
	sortByKey(s.BackendTLSPolicies)
	sortByKey(s.ConfigMaps)
	sortByKey(s.Services)
	sortByKey(s.EndpointSlices)
	sortByKey(s.Secrets)
	sortByKey(s.Namespaces)
	sortByKey(s.Pods)
	sortByKey(s.NetworkPolicies)
	sortByKey(s.CiliumNetworkPolicies)
	sortByKey(s.CiliumClusterwideNetworkPolicies)
	sortByKey(s.CiliumEnvoyConfigs)
	sortByKey(s.CiliumClusterwideEnvoyConfigs)
	sortByKey(s.GatewayClassConfigs)
	sortByKey(s.Ingresses)
	sortByKey(s.IngressClasses)
	return s, nil
}

func kindOf(obj any) Kind {
	switch obj.(type) {
	case *gwv1.GatewayClass:
		return KindGatewayClass
	case *gwv1.Gateway:
		return KindGateway
	case *gwv1.HTTPRoute:
		return KindHTTPRoute
	case *gwv1.GRPCRoute:
		return KindGRPCRoute
	case *gwv1.TLSRoute:
		return KindTLSRoute
	case *gwv1.TCPRoute:
		return KindTCPRoute
	case *gwv1.UDPRoute:
		return KindUDPRoute
	case *gwv1.ListenerSet:
		return KindListenerSet
	case *gwv1.ReferenceGrant:
		return KindReferenceGrant
	case *gwv1.BackendTLSPolicy:
		return KindBackendTLSPolicy
	case *corev1.ConfigMap:
		return KindConfigMap
	case *corev1.Service:
		return KindService
	case *discoveryv1.EndpointSlice:
		return KindEndpointSlice
	case *corev1.Secret:
		return KindSecret
	case *corev1.Namespace:
		return KindNamespace
	case *corev1.Pod:
		return KindPod
	case *networkingv1.NetworkPolicy:
		return KindNetworkPolicy
	case *ciliumv2.CiliumNetworkPolicy:
		return KindCiliumNetworkPolicy
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		return KindCiliumClusterwideNetworkPolicy
	case *ciliumv2.CiliumEnvoyConfig:
		return KindCiliumEnvoyConfig
	case *ciliumv2.CiliumClusterwideEnvoyConfig:
		return KindCiliumClusterwideEnvoyConfig
	case *ciliumv2alpha1.CiliumGatewayClassConfig:
		return KindCiliumGatewayClassConfig
	case *networkingv1.Ingress:
		return KindIngress
	case *networkingv1.IngressClass:
		return KindIngressClass
	}
	return ""
}

func sortByKey[T metav1.Object](s []T) {
	sort.Slice(s, func(i, j int) bool {
		if a, b := s[i].GetNamespace(), s[j].GetNamespace(); a != b {
			return a < b
		}
		return s[i].GetName() < s[j].GetName()
	})
}
