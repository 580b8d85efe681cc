package translator

import (
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// The order of the HTTP filters of every connection manager the translator
// emits is decided here, and only here. A connection manager lists the
// filters it needs (httpFilter values, in any order) and httpFilters puts
// them in order; adding a filter kind means adding a role below, at its
// place.

// httpFilterRole is what an HTTP filter does, in the order filters of one
// hop run.
type httpFilterRole uint8

const (
	// roleRBAC allows or denies a request (L7 policy, Envoy's RBAC filter).
	// It runs before anything that acts on an allowed request.
	roleRBAC httpFilterRole = iota
	// roleHeaderMatch applies Cilium's headerMatches mismatch actions
	// (LOG, ADD, DELETE, REPLACE) to requests the RBAC filter of the same
	// hop allowed; it never denies.
	roleHeaderMatch
	// roleCORS answers preflights and adds the CORS response headers of
	// the matched route's policy (Gateway chains only).
	roleCORS
	// roleRouter forwards the request. Envoy requires it last.
	roleRouter
)

// httpFilterHop is whose rules a filter applies. A policy listener's own
// direction comes first; the egress listener also applies the ingress
// rules of local destinations (the datapath does not redirect the proxy's
// own connections again), after the client side's, as Cilium's egress
// proxy runs before its ingress proxy. Gateway listeners have one hop.
type httpFilterHop uint8

const (
	hopListener    httpFilterHop = iota // the listener's own rules
	hopDestination                      // local destinations' ingress rules (egress listener only)
)

// httpFilter is one filter a connection manager needs.
type httpFilter struct {
	role   httpFilterRole
	hop    httpFilterHop
	filter *hcmv3.HttpFilter
}

// httpFilters returns the connection manager's HTTP filters in their one
// order: hop by hop, and within a hop by role (RBAC, then header match);
// the router is always last, whatever hop it is given. Filters of the
// same hop and role keep the order they were given in.
func httpFilters(fs []httpFilter) []*hcmv3.HttpFilter {
	sorted := append([]httpFilter(nil), fs...)
	sort.SliceStable(sorted, func(i, j int) bool { return httpFilterLess(sorted[i], sorted[j]) })
	out := make([]*hcmv3.HttpFilter, len(sorted))
	for i, f := range sorted {
		out[i] = f.filter
	}
	return out
}

func httpFilterLess(a, b httpFilter) bool {
	if (a.role == roleRouter) != (b.role == roleRouter) {
		return b.role == roleRouter
	}
	if a.hop != b.hop {
		return a.hop < b.hop
	}
	return a.role < b.role
}

// routerFilter is the router, configured inline.
func routerFilter(router *anypb.Any) httpFilter {
	return httpFilter{role: roleRouter, filter: &hcmv3.HttpFilter{
		Name: filterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
	}}
}

// discoveredFilter is a filter whose configuration arrives over ECDS: it is
// named after its TypedExtensionConfig, as Envoy requires.
func discoveredFilter(role httpFilterRole, hop httpFilterHop, name, typeURL string) httpFilter {
	return httpFilter{role: role, hop: hop, filter: &hcmv3.HttpFilter{
		Name: name, ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{
			ConfigSource: adsConfigSource(), TypeUrls: []string{typeURL},
		}},
	}}
}
