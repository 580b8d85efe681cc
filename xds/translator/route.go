package translator

import (
	"fmt"
	"slices"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// routeConfiguration emits the RouteConfiguration of one route table.
// Virtual hosts and routes keep the IR's order: the IR is already in
// precedence order and Envoy evaluates routes first-match-wins. Each route
// is validated as it is built, each virtual host's and the
// RouteConfiguration's own fields separately: together exactly what
// ValidateAll on the whole would check (the lists carry no rules of their
// own), without re-checking what is reused from the last call.
func (b *builder) routeConfiguration(rt *ir.RouteTable) error {
	name := routeConfigName(rt)
	prev := b.prev.table(rt.Name)
	next := &tableMemo{vhosts: make(map[string]*vhostMemo, len(rt.VirtualHosts))}
	vhosts := make([]*routev3.VirtualHost, 0, len(rt.VirtualHosts))
	// Envoy lower-cases domains and rejects a domain listed twice in one
	// RouteConfiguration; the IR compares them case-sensitively.
	owner := make(map[string]string)
	for _, vh := range rt.VirtualHosts {
		domains := b.domains(vh, owner)
		if len(domains) == 0 {
			b.warn(object("virtual host", vh.Name), "domains", "no domain left; virtual host dropped")
			continue
		}
		vm := prev.vhost(vh, domains, b.invalidBackend)
		if vm != nil {
			b.out.Warnings = append(b.out.Warnings, vm.warnings...)
		} else {
			var err error
			if vm, err = b.virtualHost(name, vh, domains, prev.routes(vh, b.invalidBackend)); err != nil {
				return err
			}
		}
		next.vhosts[vh.Name] = vm
		vhosts = append(vhosts, vm.out)
	}
	if prev != nil && prev.out.Name == name && slices.Equal(prev.out.VirtualHosts, vhosts) {
		next.out = prev.out
	} else {
		// The Host port is ignored when selecting a virtual host, as the
		// IR requires, but stays in the forwarded Host header (Gateway API
		// backends see "host:port"; strip_any_host_port would remove it).
		next.out = &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts, IgnorePortInHostMatching: true}
		if err := checked("route configuration", name, &routev3.RouteConfiguration{Name: name, IgnorePortInHostMatching: true}); err != nil {
			return err
		}
	}
	b.next.putTable(rt.Name, next)
	b.out.RouteConfigurations = append(b.out.RouteConfigurations, next.out)
	return nil
}

// virtualHost builds a virtual host that changed, reusing from old (its
// previous routes by name) every route that did not.
func (b *builder) virtualHost(rc string, vh *ir.VirtualHost, domains []string, old map[string]*routeMemo) (*vhostMemo, error) {
	mark := len(b.out.Warnings)
	evh := &routev3.VirtualHost{Name: virtualHostName(vh), Domains: domains}
	if err := checked("route configuration", rc+" virtual host "+evh.Name, evh); err != nil {
		return nil, err
	}
	evh.Routes = make([]*routev3.Route, 0, len(vh.Routes))
	vm := &vhostMemo{in: vh, domains: domains, invalid: b.invalidBackend, out: evh}
	if b.next != nil {
		vm.routes = make([]*routeMemo, 0, len(vh.Routes))
	}
	for _, r := range vh.Routes {
		var out *routev3.Route
		if rm := old[r.Name]; rm != nil && equalRoute(rm.in, r) {
			b.out.Warnings = append(b.out.Warnings, rm.warnings...)
			out = rm.out
			vm.routes = append(vm.routes, rm)
		} else {
			rmark := len(b.out.Warnings)
			if out = b.route(r); out != nil {
				// The label is built only on failure: this runs per route.
				if err := out.ValidateAll(); err != nil {
					return nil, fmt.Errorf("%w: route configuration %q virtual host %q route %q: %v", ErrInvalidOutput, rc, evh.Name, out.Name, err)
				}
			}
			if b.next != nil {
				vm.routes = append(vm.routes, &routeMemo{in: r, out: out, warnings: b.warningsSince(rmark)})
			}
		}
		if out != nil {
			evh.Routes = append(evh.Routes, out)
		}
	}
	vm.warnings = b.warningsSince(mark)
	return vm, nil
}

// domains returns a virtual host's domains as Envoy matches them, leaving
// out (with a warning) those an earlier virtual host of the table claimed.
func (b *builder) domains(vh *ir.VirtualHost, owner map[string]string) []string {
	domains := make([]string, 0, len(vh.Domains))
	for i, d := range vh.Domains {
		host := hostLiteral(d)
		if !protoText(host) {
			b.warn(object("virtual host", vh.Name), fieldf("domains[%d]", i), "domain cannot be carried in Envoy config; ignored")
			continue
		}
		if prev, dup := owner[host]; dup {
			if prev != vh.Name {
				b.warn(object("virtual host", vh.Name), fieldf("domains[%d]", i), "domain %q (case-insensitive) already belongs to virtual host %q; ignored here", host, prev)
			}
			continue
		}
		owner[host] = vh.Name
		domains = append(domains, host)
	}
	return domains
}

// problem is a part of a route's action or filters that stock Envoy cannot
// express. The route is then emitted answering 500: Gateway API requires a
// filter that cannot be applied to fail the request rather than be skipped.
type problem struct {
	field string
	msg   string
}

func problemf(field, format string, args ...any) *problem {
	return &problem{field: field, msg: fmt.Sprintf(format, args...)}
}

// route emits one route, or nil when its match cannot be expressed (such a
// match can never hold for a well-formed request; see match.go).
func (b *builder) route(r *ir.Route) *routev3.Route {
	match, ok := b.routeMatch(r.Name, r.Match)
	if !ok {
		return nil
	}
	out := &routev3.Route{Name: routeName(r), Match: match}
	if p := b.action(r, out); p != nil {
		b.warn(object("route", r.Name), p.field, "%s; the route answers 500 instead", p.msg)
		*out = routev3.Route{Name: out.Name, Match: out.Match, Action: directResponse(500, "")}
	}
	return out
}

// action sets the route's action and header edits.
func (b *builder) action(r *ir.Route, out *routev3.Route) *problem {
	resp, p := headerEditsOf("responseHeaders", r.ResponseHeaders, false)
	if p != nil {
		return p
	}
	// Response edits apply to every action, including redirects and direct
	// responses (Envoy applies them to locally generated replies too).
	out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = resp.add, resp.remove
	switch {
	case r.Redirect != nil:
		return b.redirect(r, out)
	case r.DirectResponse != nil:
		return directResponseAction(r.DirectResponse, out)
	default:
		return b.forward(r, out)
	}
}

// directResponseAction answers without an upstream. Request header edits
// are not emitted for it: nothing is forwarded.
func directResponseAction(d *ir.DirectResponse, out *routev3.Route) *problem {
	if len(d.Body) > maxDirectResponseBody {
		return problemf("directResponse.body", "body of %d bytes exceeds Envoy's %d-byte limit", len(d.Body), maxDirectResponseBody)
	}
	// A body is data: NUL and newlines are fine, but a proto string must be
	// UTF-8.
	if !utf8.ValidString(d.Body) {
		return problemf("directResponse.body", "body is not UTF-8 text")
	}
	out.Action = directResponse(uint32(d.Status), d.Body)
	return nil
}

func directResponse(status uint32, body string) *routev3.Route_DirectResponse {
	dr := &routev3.DirectResponseAction{Status: status}
	if body != "" {
		dr.Body = inlineString(body)
	}
	return &routev3.Route_DirectResponse{DirectResponse: dr}
}

func inlineString(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}
