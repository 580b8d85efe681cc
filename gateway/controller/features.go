package controller

import (
	"slices"
	"sort"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// SupportedFeatures is what nodemesh claims in GatewayClass
// status.supportedFeatures: exactly the Gateway API features whose
// conformance tests pass in `make conformance` (the run infers the same
// set from the GatewayClass, so the report and the status cannot drift).
// Add a feature here only together with the passing report. Features
// whose API fields exist only in the experimental channel's CRDs are in
// ExperimentalFeatures instead.
var SupportedFeatures = []features.FeatureName{
	// Core.
	features.SupportGateway,
	features.SupportHTTPRoute,
	features.SupportReferenceGrant,
	// Extended, Gateway.
	features.SupportGatewayPort8080,
	features.SupportGatewayHTTPListenerIsolation,
	features.SupportGatewayStaticAddresses,
	features.SupportGatewayAddressEmpty,
	features.SupportGatewayHTTPSListenerDetectMisdirectedRequests,
	features.SupportListenerSet,
	// Extended, HTTPRoute.
	features.SupportHTTPRouteQueryParamMatching,
	features.SupportHTTPRouteMethodMatching,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRouteBackendRequestHeaderModification,
	features.SupportHTTPRoutePortRedirect,
	features.SupportHTTPRouteSchemeRedirect,
	features.SupportHTTPRoutePathRedirect,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportHTTPRouteHostRewrite,
	features.SupportHTTPRoutePathRewrite,
	features.SupportHTTPRouteRequestTimeout,
	features.SupportHTTPRouteBackendTimeout,
	features.SupportHTTPRouteBackendProtocolH2C,
	features.SupportHTTPRouteBackendProtocolWebSocket,
	features.SupportHTTPRouteNamedRouteRule,
	features.SupportHTTPRouteParentRefPort,
	features.SupportHTTPRouteCORS,
	features.SupportHTTPRouteRequestMirror,
	features.SupportHTTPRouteRequestMultipleMirrors,
	features.SupportHTTPRouteRequestPercentageMirror,
	features.SupportHTTPRouteDestinationPortMatching,
	// GRPCRoute.
	features.SupportGRPCRoute,
	features.SupportGRPCRouteNamedRouteRule,
	// TLSRoute (passthrough, terminate, both on one port), TCPRoute and
	// UDPRoute.
	features.SupportTLSRoute,
	features.SupportTLSRouteModeTerminate,
	features.SupportTLSRouteModeMixed,
	features.SupportTCPRoute,
	features.SupportUDPRoute,
	// BackendTLSPolicy.
	features.SupportBackendTLSPolicy,
	features.SupportBackendTLSPolicySANValidation,
	// Gateway TLS settings.
	features.SupportGatewayBackendClientCertificate,
	features.SupportGatewayFrontendClientCertificateValidation,
	features.SupportGatewayFrontendClientCertificateValidationInsecureFallback,
}

// ExperimentalFeatures are supported features whose API fields only the
// experimental channel's CRDs carry: with standard CRDs the API server
// drops those fields, so claiming the features would promise behaviour no
// object can ask for (and their conformance tests would fail). They are
// claimed only when the experimental CRDs are installed (FeaturesFor).
var ExperimentalFeatures = []features.FeatureName{
	// HTTPRoute rules[].retry.
	features.SupportHTTPRouteRetry,
	features.SupportHTTPRouteRetryBackendTimeout,
	features.SupportHTTPRouteRetryConnectionError,
}

// ServiceFeatures are supported only when the controller gives each
// Gateway a Service (WithGatewayServices, the binary's default):
// GatewayInfrastructure's labels and annotations land on that Service,
// which is what its conformance test looks at (it lists Services with the
// gateway-name label). Without Services there is nothing to carry them.
var ServiceFeatures = []features.FeatureName{
	features.SupportGatewayInfrastructure,
}

// FeaturesFor returns the features to claim with the CRDs of a release
// channel installed (an unknown channel gets the standard ones) and with
// or without per-Gateway Services.
func FeaturesFor(channel string, services bool) []features.FeatureName {
	out := slices.Clone(SupportedFeatures)
	if channel == ChannelExperimental {
		out = append(out, ExperimentalFeatures...)
	}
	if services {
		out = append(out, ServiceFeatures...)
	}
	return out
}

// supported renders a feature list as GatewayClass status wants it:
// sorted by name, without duplicates.
func supported(names []features.FeatureName) []gwv1.SupportedFeature {
	seen := map[features.FeatureName]bool{}
	var out []gwv1.SupportedFeature
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, gwv1.SupportedFeature{Name: gwv1.FeatureName(n)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
