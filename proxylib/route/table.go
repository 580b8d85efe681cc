package route

import (
	"sort"
	"strings"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Table is a compiled RouteConfiguration.
type Table struct {
	Name       string
	ignorePort bool
	exact      map[string]*resource.VirtualHost
	suffixes   []wildcards // longest first
	prefixes   []wildcards // longest first
	any        *resource.VirtualHost
}

type wildcards struct {
	n int
	m map[string]*resource.VirtualHost
}

// New compiles rc. Domain validity and uniqueness were checked when rc was
// decoded.
func New(rc *resource.RouteConfig) *Table {
	t := &Table{Name: rc.Name, ignorePort: rc.IgnorePort, exact: map[string]*resource.VirtualHost{}}
	suf := map[int]map[string]*resource.VirtualHost{}
	pre := map[int]map[string]*resource.VirtualHost{}
	for _, vh := range rc.VirtualHosts {
		for _, d := range vh.Domains {
			switch {
			case d == "*":
				t.any = vh
			case strings.HasPrefix(d, "*"):
				addWild(suf, d[1:], vh)
			case strings.HasSuffix(d, "*"):
				addWild(pre, d[:len(d)-1], vh)
			default:
				t.exact[d] = vh
			}
		}
	}
	t.suffixes = sortWild(suf)
	t.prefixes = sortWild(pre)
	return t
}

// withoutPort drops a trailing ":port" from a Host header value, leaving
// an IPv6 literal's brackets alone ("[::1]:80" becomes "[::1]", "[::1]"
// stays), as Envoy does for ignore_port_in_host_matching.
func withoutPort(host []byte) []byte {
	for i := len(host) - 1; i >= 0; i-- {
		switch c := host[i]; {
		case c == ':':
			if i == len(host)-1 {
				return host // "host:" has no port to drop
			}
			return host[:i]
		case c < '0' || c > '9':
			return host
		}
	}
	return host
}

func addWild(m map[int]map[string]*resource.VirtualHost, key string, vh *resource.VirtualHost) {
	if m[len(key)] == nil {
		m[len(key)] = map[string]*resource.VirtualHost{}
	}
	if _, dup := m[len(key)][key]; !dup {
		m[len(key)][key] = vh
	}
}

func sortWild(m map[int]map[string]*resource.VirtualHost) []wildcards {
	out := make([]wildcards, 0, len(m))
	for n, mm := range m {
		out = append(out, wildcards{n: n, m: mm})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n > out[j].n })
	return out
}

// VirtualHost selects the virtual host for host, or nil.
func (t *Table) VirtualHost(host []byte) *resource.VirtualHost {
	if t == nil {
		return nil
	}
	if t.ignorePort {
		host = withoutPort(host)
	}
	var stack [256]byte
	var lower []byte
	if len(host) <= len(stack) {
		lower = stack[:len(host)]
	} else {
		lower = make([]byte, len(host))
	}
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if vh, ok := t.exact[string(lower)]; ok {
		return vh
	}
	for _, w := range t.suffixes {
		if len(lower) > w.n {
			if vh, ok := w.m[string(lower[len(lower)-w.n:])]; ok {
				return vh
			}
		}
	}
	for _, w := range t.prefixes {
		if len(lower) > w.n {
			if vh, ok := w.m[string(lower[:w.n])]; ok {
				return vh
			}
		}
	}
	return t.any
}
