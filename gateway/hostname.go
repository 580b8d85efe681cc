package gateway

import (
	"net/netip"
	"strings"
)

// Hostnames here are Gateway API hostnames: lower-case DNS names, optionally
// with one leading "*." wildcard label that matches one or more labels.
// Inside a route table the string "*" stands for "any host" (a listener or
// route without hostnames).

const anyHost = "*"

// validHostname reports whether h is a Gateway API hostname (RFC 1123, lower
// case, not an IP address), allowing a leading wildcard label if wildcard.
func validHostname(h string, wildcard bool) bool {
	if wildcard {
		h = strings.TrimPrefix(h, "*.")
	}
	if h == "" || len(h) > 253 {
		return false
	}
	// Only an IPv4 literal passes the label check below and must still
	// be refused; parsing every hostname as an address would allocate a
	// failure's error for each, on every translation.
	if strings.Trim(h, "0123456789.") == "" {
		if _, err := netip.ParseAddr(h); err == nil {
			return false
		}
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func isWildcard(h string) bool { return strings.HasPrefix(h, "*.") }

// wildcardMatches reports whether the wildcard w ("*.suffix") matches the
// exact hostname h: h ends in ".suffix" after at least one label.
func wildcardMatches(w, h string) bool {
	suffix := w[1:] // ".suffix"
	return len(h) > len(suffix) && strings.HasSuffix(h, suffix)
}

// intersect returns the hostnames a listener hostname ("" for none) and a
// route hostname have in common, as the more specific of the two, and
// whether they have any. A route without hostnames is intersected with
// anyHost.
func intersect(listener, route string) (string, bool) {
	if h, ok := intersection(listener, route); ok {
		return h, true
	}
	return "", false
}

func intersection(listener, route string) (string, bool) {
	switch {
	case listener == "":
		return route, true
	case route == anyHost:
		return listener, true
	case !isWildcard(listener) && !isWildcard(route):
		return listener, listener == route
	case !isWildcard(listener):
		return listener, wildcardMatches(route, listener)
	case !isWildcard(route):
		return route, wildcardMatches(listener, route)
	case listener == route:
		return listener, true
	case strings.HasSuffix(route[1:], listener[1:]):
		return route, true // "*.a.example.com" within "*.example.com"
	case strings.HasSuffix(listener[1:], route[1:]):
		return listener, true
	}
	return "", false
}

// covers reports whether requests for domain d (a table domain: exact,
// wildcard or anyHost) all match hostname h.
func covers(h, d string) bool {
	switch {
	case h == anyHost || h == d:
		return true
	case !isWildcard(h) || d == anyHost:
		return false
	case isWildcard(d):
		return strings.HasSuffix(d[1:], h[1:])
	}
	return wildcardMatches(h, d)
}

// listenerCovers is covers for a listener hostname, where "" matches all.
func listenerCovers(listener, d string) bool {
	return listener == "" || covers(listener, d)
}

// specificity orders hostnames for listener selection and route precedence:
// exact names beat wildcards, longer wildcards beat shorter ones, and both
// beat "" / anyHost.
func specificity(h string) (exact bool, length int) {
	switch {
	case h == "" || h == anyHost:
		return false, 0
	case isWildcard(h):
		return false, len(h)
	}
	return true, len(h)
}

// moreSpecific reports whether hostname a is strictly more specific than b.
func moreSpecific(a, b string) bool {
	ea, la := specificity(a)
	eb, lb := specificity(b)
	if ea != eb {
		return ea
	}
	return la > lb
}

// coveringHostnames calls fn with every hostname that covers domain d, from
// the most to the least specific: d itself, the wildcards of its parent
// domains, then anyHost. It stops when fn returns false.
func coveringHostnames(d string, fn func(h string) bool) {
	if d != anyHost {
		if !fn(d) {
			return
		}
		base := d
		if isWildcard(d) {
			base = d[2:]
		}
		for {
			i := strings.IndexByte(base, '.')
			if i < 0 {
				break
			}
			base = base[i+1:]
			if !fn("*." + base) {
				return
			}
		}
	}
	fn(anyHost)
}
