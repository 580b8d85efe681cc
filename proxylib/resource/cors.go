package resource

import (
	"sort"
	"strconv"
	"strings"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Tri is an optional boolean of a CorsPolicy: a policy that leaves it
// unset defers to the next, less specific one.
type Tri uint8

// Tri values.
const (
	Unset Tri = iota
	False
	True
)

func tri(v *wrapperspb.BoolValue) Tri {
	switch {
	case v == nil:
		return Unset
	case v.GetValue():
		return True
	}
	return False
}

// CorsPolicy is a decoded envoy.extensions.filters.http.cors.v3.CorsPolicy
// from a route's or virtual host's typed_per_filter_config. Every field
// resolves separately, as in Envoy: the route's policy when it sets the
// field, else the virtual host's (empty values and Unset are "not set").
// The strings are kept as bytes: they become response header values as
// they are.
type CorsPolicy struct {
	AllowOrigins                 []StringMatch
	AllowMethods                 []byte
	AllowHeaders                 []byte
	ExposeHeaders                []byte
	MaxAge                       []byte
	AllowCredentials             Tri
	AllowPrivateNetworkAccess    Tri
	ForwardNotMatchingPreflights Tri
}

// PerFilter holds the typed_per_filter_config of a route or virtual host
// by filter name; CORS policies are the only per-filter configuration the
// proxy implements (other types are NACKed by the allowlist).
type PerFilter map[string]*CorsPolicy

func decodePerFilter(m map[string]*anypb.Any, p path) (PerFilter, error) {
	if len(m) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := PerFilter{}
	for _, k := range keys {
		kp := append(p, "typed_per_filter_config", "["+strconv.Quote(k)+"]")
		var c corsv3.CorsPolicy
		if err := m[k].UnmarshalTo(&c); err != nil {
			return nil, fieldErr(kp, "decoding: %v", err)
		}
		pol, err := decodeCorsPolicy(&c, append(kp, "(CorsPolicy)"))
		if err != nil {
			return nil, err
		}
		out[k] = pol
	}
	return out, nil
}

func decodeCorsPolicy(c *corsv3.CorsPolicy, p path) (*CorsPolicy, error) {
	out := &CorsPolicy{AllowMethods: bytesOrNil(c.GetAllowMethods()), AllowHeaders: bytesOrNil(c.GetAllowHeaders()),
		ExposeHeaders: bytesOrNil(c.GetExposeHeaders()), MaxAge: bytesOrNil(c.GetMaxAge()),
		AllowCredentials:             tri(c.GetAllowCredentials()),
		AllowPrivateNetworkAccess:    tri(c.GetAllowPrivateNetworkAccess()),
		ForwardNotMatchingPreflights: tri(c.GetForwardNotMatchingPreflights())}
	for i, m := range c.GetAllowOriginStringMatch() {
		sm, err := stringMatch(m, append(p, "allow_origin_string_match", "["+strconv.Itoa(i)+"]"))
		if err != nil {
			return nil, err
		}
		out.AllowOrigins = append(out.AllowOrigins, sm)
	}
	for _, f := range []struct{ name, v string }{{"allow_methods", c.GetAllowMethods()}, {"allow_headers", c.GetAllowHeaders()},
		{"expose_headers", c.GetExposeHeaders()}, {"max_age", c.GetMaxAge()}} {
		// The values become response header values verbatim.
		if strings.ContainsAny(f.v, "\r\n\x00") {
			return nil, fieldErr(append(p, f.name), "not a valid header value")
		}
	}
	return out, nil
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
