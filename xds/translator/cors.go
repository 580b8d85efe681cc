package translator

import (
	"strconv"
	"strings"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// CORS. A chain with ir.HTTPChain.CORS runs Envoy's CORS filter (no
// configuration of its own) before the router; each route with an IR CORS
// policy carries a CorsPolicy in its typed_per_filter_config under the
// filter's name. Routes without one are left alone by the filter.
// forward_not_matching_preflights is false: a preflight from an origin
// that is not allowed is answered by the proxy (200 without
// access-control-allow-origin) instead of reaching the backend, which
// Gateway API requires (the preflight belongs to the gateway's CORS
// policy, not to the backend). filter_enabled is never set, so every
// policy is enforced.

// corsFilter is the CORS filter of a connection manager.
func corsFilter(listener string) (httpFilter, error) {
	cfg, err := typedConfig("listener", listener, &corsv3.Cors{})
	if err != nil {
		return httpFilter{}, err
	}
	return httpFilter{role: roleCORS, filter: &hcmv3.HttpFilter{Name: filterCORS, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}}, nil
}

// corsPolicy is a route's CorsPolicy: origins as string matchers, lists
// joined with ", " as the response headers carry them, max-age in seconds.
func corsPolicy(route string, c *ir.CORSPolicy) (map[string]*anypb.Any, *problem) {
	p := &corsv3.CorsPolicy{
		AllowMethods:  strings.Join(c.AllowMethods, ", "),
		AllowHeaders:  strings.Join(c.AllowHeaders, ", "),
		ExposeHeaders: strings.Join(c.ExposeHeaders, ", "),
		// See above: the proxy answers every preflight itself.
		ForwardNotMatchingPreflights: wrapperspb.Bool(false),
	}
	if c.MaxAge > 0 {
		p.MaxAge = strconv.FormatInt(int64(c.MaxAge.Seconds()), 10)
	}
	if c.AllowCredentials {
		p.AllowCredentials = wrapperspb.Bool(true)
	}
	p.AllowOriginStringMatch = make([]*matcherv3.StringMatcher, len(c.AllowOrigins))
	for i, o := range c.AllowOrigins {
		p.AllowOriginStringMatch[i] = stringMatcher(o.Type, o.Value)
	}
	cfg, err := typedConfig("route", route, p)
	if err != nil {
		return nil, problemf("cors", "%v", err)
	}
	return map[string]*anypb.Any{filterCORS: cfg}, nil
}
