package v2alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of Cilium's alpha API.
const (
	Group   = "cilium.io"
	Version = "v2alpha1"
	// GatewayClassConfigKind is the kind a GatewayClass parametersRef
	// names.
	GatewayClassConfigKind = "CiliumGatewayClassConfig"
)

// SchemeGroupVersion is cilium.io/v2alpha1.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// CiliumGatewayClassConfigResource is where an API server with the CRD
// serves the kind.
var CiliumGatewayClassConfigResource = SchemeGroupVersion.WithResource("ciliumgatewayclassconfigs")

// AddToScheme registers the kinds with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &CiliumGatewayClassConfig{}, &CiliumGatewayClassConfigList{})
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
