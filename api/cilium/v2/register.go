package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of Cilium's API.
const (
	Group   = "cilium.io"
	Version = "v2"
)

// SchemeGroupVersion is cilium.io/v2.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// The resources the kinds are served under by an API server that has
// Cilium's CRDs (or the ones in package api) installed.
var (
	CiliumNetworkPolicyResource            = SchemeGroupVersion.WithResource("ciliumnetworkpolicies")
	CiliumClusterwideNetworkPolicyResource = SchemeGroupVersion.WithResource("ciliumclusterwidenetworkpolicies")
	CiliumIdentityResource                 = SchemeGroupVersion.WithResource("ciliumidentities")
	CiliumEnvoyConfigResource              = SchemeGroupVersion.WithResource("ciliumenvoyconfigs")
	CiliumClusterwideEnvoyConfigResource   = SchemeGroupVersion.WithResource("ciliumclusterwideenvoyconfigs")
)

// AddToScheme registers the kinds with a scheme, for clients that read
// them from an API server.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&CiliumNetworkPolicy{}, &CiliumNetworkPolicyList{},
		&CiliumClusterwideNetworkPolicy{}, &CiliumClusterwideNetworkPolicyList{},
		&CiliumIdentity{}, &CiliumIdentityList{},
		&CiliumEnvoyConfig{}, &CiliumEnvoyConfigList{},
		&CiliumClusterwideEnvoyConfig{}, &CiliumClusterwideEnvoyConfigList{},
	)
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
