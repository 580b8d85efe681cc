package hcm

import (
	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Envoy's CORS filter (envoy.extensions.filters.http.cors.v3.Cors), with
// its policies in the matched route's and virtual host's
// typed_per_filter_config under the filter's name:
//   - Each policy field resolves on its own: the route's when it sets it,
//     else the virtual host's. Without a policy on either the filter does
//     nothing (filter_enabled and shadow_enabled are NACKed, so a policy is
//     always enabled).
//   - A request with a non-empty Origin is a CORS request. Its origin is
//     allowed when a matcher of allow_origin_string_match matches it, or
//     matches the literal "*" (so an exact "*" allows every origin); the
//     response then echoes that origin — never "*" — in
//     access-control-allow-origin.
//   - A preflight (OPTIONS with Origin and a non-empty
//     access-control-request-method) from an allowed origin is answered
//     here with 200: allow-origin, allow-credentials "true" when set,
//     allow-methods (allow_methods; "*" echoes the requested method),
//     allow-headers (allow_headers; "*" echoes access-control-request-
//     headers), max-age, and access-control-allow-private-network "true"
//     when allow_private_network_access and the request asked for it. A
//     preflight from another origin is forwarded
//     (forward_not_matching_preflights, default true), or answered 200 the
//     same way but without allow-origin.
//   - Every response to an allowed CORS request — upstream or local, the
//     preflight answer included — gets allow-origin, allow-credentials
//     when set and access-control-expose-headers (expose_headers),
//     replacing what the upstream sent; responses to other origins are left
//     alone.
//   - The route it matches is the router's route: a filter after it that
//     edits headers does not re-route the request (Envoy caches the route
//     the same way).
//
// The state lives in the stream and its buffers are reused, so a CORS
// request allocates nothing once they grew; a connection manager without
// the filter pays one flag test per response.

// detailsCORS is the response code details of a preflight answer.
const detailsCORS = "cors_response"

// corsState is the CORS filter's view of the current request.
type corsState struct {
	active    bool // the filter saw an Origin under a policy
	preflight bool // the filter answers this request itself
	allowed   bool // the origin matched: responses echo it
	routed    bool // route and table matched by the filter
	route     *resource.Route
	origin    []byte // copied: responses outlive the request head
	reqMethod []byte
	reqHeads  []byte
	pna       bool // the request asked for private network access
	// Resolved policy fields.
	enabled            bool
	origins            []resource.StringMatch
	forwardNotMatching bool
	credentials        bool
	methods            []byte
	headers            []byte
	expose             []byte
	maxAge             []byte
	allowPNA           bool
}

var (
	hOrigin          = []byte("access-control-allow-origin")
	hAllowCreds      = []byte("access-control-allow-credentials")
	hAllowMethods    = []byte("access-control-allow-methods")
	hAllowHeaders    = []byte("access-control-allow-headers")
	hMaxAge          = []byte("access-control-max-age")
	hExposeHeaders   = []byte("access-control-expose-headers")
	hAllowPrivateNet = []byte("access-control-allow-private-network")
	methodOptions    = []byte("OPTIONS")
)

// reset forgets the previous request (called when a request begins).
func (c *corsState) reset() {
	c.active, c.preflight, c.allowed, c.routed, c.route = false, false, false, false, nil
}

// runCORS runs the CORS filter called name. It returns outLocal and true
// when it answers a preflight.
func (s *stream) runCORS(name string) (outcome, bool) {
	c := &s.cors
	if !c.routed {
		c.routed = true
		if tbl := s.routing.Routes[s.h.cfg.RouteConfigName]; tbl != nil {
			vh, rt := tbl.Match(&s.rreq)
			c.route = rt
			if rt != nil {
				c.resolve(rt.PerFilter[name], vh.PerFilter[name])
			}
		}
	}
	if c.route == nil || !c.enabled {
		return outForward, false
	}
	origin, ok := s.headers.Get("origin")
	if !ok || len(origin) == 0 {
		return outForward, false
	}
	c.active = true
	c.allowed = originAllowed(c.origins, origin)
	if c.allowed {
		c.origin = append(c.origin[:0], origin...)
	}
	if string(s.rreq.Method) != string(methodOptions) {
		return outForward, false
	}
	m, _ := s.headers.Get("access-control-request-method")
	if len(m) == 0 {
		return outForward, false
	}
	if !c.allowed && c.forwardNotMatching {
		return outForward, false
	}
	c.preflight = true
	c.reqMethod = append(c.reqMethod[:0], m...)
	h, _ := s.headers.Get("access-control-request-headers")
	c.reqHeads = append(c.reqHeads[:0], h...)
	pna, _ := s.headers.Get("access-control-request-private-network")
	c.pna = string(pna) == "true"
	s.grpc = false // a preflight is answered as plain HTTP whatever it claims
	return s.local(200, nil, detailsCORS), true
}

// resolve takes each field from the most specific policy setting it.
func (c *corsState) resolve(route, vhost *resource.CorsPolicy) {
	c.enabled = route != nil || vhost != nil
	c.origins, c.methods, c.headers, c.expose, c.maxAge = nil, nil, nil, nil, nil
	c.credentials, c.allowPNA, c.forwardNotMatching = false, false, true
	credSet, pnaSet, fwdSet := false, false, false
	for _, p := range [2]*resource.CorsPolicy{route, vhost} {
		if p == nil {
			continue
		}
		if c.origins == nil && len(p.AllowOrigins) > 0 {
			c.origins = p.AllowOrigins
		}
		c.methods = firstSet(c.methods, p.AllowMethods)
		c.headers = firstSet(c.headers, p.AllowHeaders)
		c.expose = firstSet(c.expose, p.ExposeHeaders)
		c.maxAge = firstSet(c.maxAge, p.MaxAge)
		if !credSet && p.AllowCredentials != resource.Unset {
			c.credentials, credSet = p.AllowCredentials == resource.True, true
		}
		if !pnaSet && p.AllowPrivateNetworkAccess != resource.Unset {
			c.allowPNA, pnaSet = p.AllowPrivateNetworkAccess == resource.True, true
		}
		if !fwdSet && p.ForwardNotMatchingPreflights != resource.Unset {
			c.forwardNotMatching, fwdSet = p.ForwardNotMatchingPreflights == resource.True, true
		}
	}
}

func firstSet(have, v []byte) []byte {
	if have != nil {
		return have
	}
	return v
}

// originAllowed applies allow_origin_string_match as Envoy does: a
// matcher that matches "*" allows any origin.
func originAllowed(ms []resource.StringMatch, origin []byte) bool {
	for i := range ms {
		if ms[i].Match(star) || ms[i].Match(origin) {
			return true
		}
	}
	return false
}

var star = []byte("*")

// corsPreflightHeaders adds the preflight answer's own headers.
func (s *stream) corsPreflightHeaders(l *header.List) {
	c := &s.cors
	if len(c.methods) > 0 {
		if string(c.methods) == "*" {
			l.Set(hAllowMethods, c.reqMethod)
		} else {
			l.Set(hAllowMethods, c.methods)
		}
	}
	if len(c.headers) > 0 {
		if string(c.headers) == "*" {
			l.Set(hAllowHeaders, c.reqHeads)
		} else {
			l.Set(hAllowHeaders, c.headers)
		}
	}
	if len(c.maxAge) > 0 {
		l.Set(hMaxAge, c.maxAge)
	}
	if c.allowPNA && c.pna {
		l.Set(hAllowPrivateNet, hTrue)
	}
}

// corsResponse adds the CORS headers to a response of the request (the
// filter's encode side).
func (s *stream) corsResponse(l *header.List) {
	c := &s.cors
	if c.preflight {
		s.corsPreflightHeaders(l)
		if c.credentials {
			l.Set(hAllowCreds, hTrue) // also for an origin that did not match
		}
	}
	if !c.allowed {
		return
	}
	l.Set(hOrigin, c.origin)
	if c.credentials {
		l.Set(hAllowCreds, hTrue)
	}
	if len(c.expose) > 0 {
		l.Set(hExposeHeaders, c.expose)
	}
}
