package translator

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// routeConfiguration emits the RouteConfiguration of one route table.
// Virtual hosts and routes keep the IR's order: the IR is already in
// precedence order and Envoy evaluates routes first-match-wins. Each new
// route is validated once (checkRoutes, at the end of the build), each
// virtual host's and the RouteConfiguration's own fields separately:
// together exactly what ValidateAll on the whole would check (the lists
// carry no rules of their own), without re-checking what is reused.
func (b *builder) routeConfiguration(rt *ir.RouteTable) error {
	name := routeConfigName(rt)
	prev := b.prev.table(rt.Name)
	next := &tableMemo{vhosts: make(map[string]*vhostMemo, len(rt.VirtualHosts))}
	vhosts := make([]*routev3.VirtualHost, 0, len(rt.VirtualHosts))
	var v version
	v.start("route configuration").str(name)
	// Envoy lower-cases domains and rejects a domain listed twice in one
	// RouteConfiguration; the IR compares them case-sensitively.
	owner := make(map[string]string)
	var scratch []string
	for _, vh := range rt.VirtualHosts {
		// The domains are written into scratch first: a virtual host
		// reused from the previous translation keeps its own, and only
		// one built anew holds a copy.
		domains := b.domains(vh, owner, scratch[:0])
		scratch = domains
		if len(domains) == 0 {
			b.warn(object("virtual host", vh.Name), "domains", "no domain left; virtual host dropped")
			continue
		}
		h := b.hashes.VirtualHost(vh)
		usesInvalid := b.usesInvalid(prev, vh, h)
		vv := b.vhostVersion(h, domains, usesInvalid)
		vm := prev.vhost(vh.Name, vv)
		if vm != nil {
			b.out.Warnings = append(b.out.Warnings, vm.warnings...)
		} else {
			var err error
			if vm, err = b.virtualHost(name, vh, h, vv, slices.Clone(domains), b.oldRoutes(prev, vh.Name)); err != nil {
				return err
			}
			vm.usesInvalid = usesInvalid
		}
		next.vhosts[vh.Name] = vm
		vhosts = append(vhosts, vm.out)
		v.hash(vv)
	}
	next.version = versionString(v.sum())
	if prev != nil && prev.version == next.version {
		next.out, next.wire = prev.out, prev.wire
	} else {
		// The Host port is ignored when selecting a virtual host, as the
		// IR requires, but stays in the forwarded Host header (Gateway API
		// backends see "host:port"; strip_any_host_port would remove it).
		next.out = &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts, IgnorePortInHostMatching: true}
		if err := checked("route configuration", name, &routev3.RouteConfiguration{Name: name, IgnorePortInHostMatching: true}); err != nil {
			return err
		}
		next.wire = &routesWire{rc: next.out, vhosts: make([]*serialized, 0, len(vhosts))}
		for _, vh := range rt.VirtualHosts {
			if vm := next.vhosts[vh.Name]; vm != nil {
				next.wire.vhosts = append(next.wire.vhosts, vm.wire)
			}
		}
	}
	b.next.put(rt.Name, next)
	b.out.RouteConfigurations = append(b.out.RouteConfigurations, next.out)
	b.emit(next.out, next.version)
	b.out.wires[next.out] = next.wire
	return nil
}

// vhostVersion is the version of a virtual host's output: a function of
// the IR virtual host (h), the domains left to it and, when a route names
// it, the invalid-backend cluster name.
func (b *builder) vhostVersion(h ir.Hash, domains []string, usesInvalid bool) ir.Hash {
	v := b.ver.start("virtual host").hash(h).uint(uint64(len(domains)))
	for _, d := range domains {
		v.str(d)
	}
	if usesInvalid {
		v.str(b.invalidBackend)
	}
	if b.viaIngress {
		v.hash(b.ingressSalt)
	}
	return v.sum()
}

// usesInvalid reports whether a route of vh (of hash h) names the
// invalid-backend cluster, from the previous translation when it built
// the same content, or from this one when another virtual host holds the
// same routes (a Gateway's HTTP and HTTPS listeners, commonly).
func (b *builder) usesInvalid(prev *tableMemo, vh *ir.VirtualHost, h ir.Hash) bool {
	if prev != nil {
		if vm := prev.vhosts[vh.Name]; vm != nil && vm.hash == h {
			return vm.usesInvalid
		}
	}
	list := b.hashes.RouteList(vh)
	if uses, ok := b.listsInvalid[list]; ok {
		return uses
	}
	uses := slices.ContainsFunc(vh.Routes, usesInvalidBackend)
	if b.listsInvalid == nil {
		b.listsInvalid = map[ir.Hash]bool{}
	}
	b.listsInvalid[list] = uses
	return uses
}

// virtualHost builds a virtual host that changed. A route already built
// in this translation (for another virtual host) or in the previous
// version of this one (old, by content hash) is reused; the others are
// built and validated.
func (b *builder) virtualHost(rc string, vh *ir.VirtualHost, h, version ir.Hash, domains []string, old map[ir.Hash]*routeMemo) (*vhostMemo, error) {
	mark := len(b.out.Warnings)
	evh := &routev3.VirtualHost{Name: virtualHostName(vh), Domains: domains}
	if err := checked("route configuration", rc+" virtual host "+evh.Name, evh); err != nil {
		return nil, err
	}
	vm := &vhostMemo{hash: h, version: version, domains: domains, out: evh, wire: &serialized{msg: evh}}
	list := b.hashes.RouteList(vh)
	if b.viaIngress {
		// Its routes name the filtered cluster variants.
		list = mixHash(list, b.ingressSalt)
	}
	if same := b.lists[list]; same != nil {
		// Another virtual host of this translation holds the very same
		// routes (a Gateway's HTTP and HTTPS listeners, commonly): the
		// walk below would find each of them built, so its list is
		// shared, with the routes' warnings repeated.
		evh.Routes, vm.routes = same.out.Routes, same.routes
		for _, rm := range same.routes {
			b.out.Warnings = append(b.out.Warnings, rm.warnings...)
		}
		vm.warnings = b.warningsSince(mark)
		return vm, nil
	}
	evh.Routes = make([]*routev3.Route, 0, len(vh.Routes))
	vm.routes = make([]*routeMemo, 0, len(vh.Routes))
	hashes := b.hashes.VirtualHostRoutes(vh)
	for i, r := range vh.Routes {
		rh := hashes[i]
		if b.viaIngress {
			rh = mixHash(rh, b.ingressSalt)
		}
		rm := b.routes[rh]
		if rm == nil {
			rm = old[rh]
		}
		if rm != nil && rm.invalid != "" && rm.invalid != b.invalidBackend {
			rm = nil // built for another invalid-backend name
		}
		if rm != nil {
			b.out.Warnings = append(b.out.Warnings, rm.warnings...)
		} else {
			rmark := len(b.out.Warnings)
			out, from := b.route(r)
			if out != nil {
				if validating != nil {
					validating(out)
				}
				b.unchecked = append(b.unchecked, uncheckedRoute{out: out, from: from, rc: rc, vhost: evh.Name})
			}
			rm = b.routeMemos.get(b.cold)
			*rm = routeMemo{hash: rh, out: out, warnings: b.warningsSince(rmark)}
			if usesInvalidBackend(r) {
				rm.invalid = b.invalidBackend
			}
		}
		b.routes[rh] = rm
		vm.routes = append(vm.routes, rm)
		if rm.out != nil {
			evh.Routes = append(evh.Routes, rm.out)
		}
	}
	vm.warnings = b.warningsSince(mark)
	if b.lists == nil {
		b.lists = map[ir.Hash]*vhostMemo{}
	}
	b.lists[list] = vm
	return vm, nil
}

// domains appends to domains a virtual host's domains as Envoy matches
// them, leaving out (with a warning) those an earlier virtual host of the
// table claimed.
func (b *builder) domains(vh *ir.VirtualHost, owner map[string]string, domains []string) []string {
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
// match can never hold for a well-formed request; see match.go). from is
// the route built earlier in this translation whose action and header
// edits out shares, or nil.
func (b *builder) route(r *ir.Route) (out, from *routev3.Route) {
	parts := b.routeParts.get(b.cold)
	if !b.routeMatch(r.Name, r.Match, parts) {
		return nil, nil
	}
	out = &parts.route
	out.Name, out.Match = routeName(r), &parts.match
	if from = b.sharedAction(r); from != nil {
		shareAction(out, from)
		return out, from
	}
	if p := b.action(r, out); p != nil {
		b.warn(object("route", r.Name), p.field, "%s; the route answers 500 instead", p.msg)
		*out = routev3.Route{Name: out.Name, Match: out.Match, Action: directResponse(500, "")}
		return out, nil
	}
	b.rememberAction(r, out)
	return out, nil
}

// routeParts are the messages every route has, in one allocation:
// routes come by the thousand.
type routeParts struct {
	route  routev3.Route
	match  routev3.RouteMatch
	prefix routev3.RouteMatch_PathSeparatedPrefix
}

// action sets the route's action and header edits.
func (b *builder) action(r *ir.Route, out *routev3.Route) *problem {
	resp, p := b.headerEditsOf("responseHeaders", r.ResponseHeaders, false)
	if p != nil {
		return p
	}
	// Response edits apply to every action, including redirects and direct
	// responses (Envoy applies them to locally generated replies too).
	out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = resp.add, resp.remove
	if r.CORS != nil {
		if out.TypedPerFilterConfig, p = corsPolicy(r.Name, r.CORS); p != nil {
			return p
		}
	}
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

// uncheckedRoute is a route built in this translation, not yet validated,
// with where it is (for the error). from, when set, is the route whose
// action and header edits out shares: it comes earlier in build order
// and is validated whole, so out's own check is its match (validShared).
type uncheckedRoute struct {
	out, from *routev3.Route
	rc, vhost string
}

// parallelCheckMin is the number of new routes from which checkRoutes
// validates on several goroutines: below it, starting them costs more than
// it saves.
const parallelCheckMin = 256

// checkRoutes validates the routes built in this translation, each once,
// and an action several of them share once (validShared). Validation
// reads nothing but the routes and allocates little, so it runs
// on up to GOMAXPROCS goroutines (at most 8) without competing with the
// garbage collector for them (see "Cold translation" in doc.go); the
// error reported is the one of the first failing route in build order,
// as a sequential check would report.
func (b *builder) checkRoutes() error {
	routes := b.unchecked
	b.unchecked = nil
	errs := make([]error, len(routes))
	check := func(i int) {
		r := routes[i]
		if r.from != nil && validShared(r.out, r.from) {
			return
		}
		if validRoute(r.out) {
			return
		}
		if err := r.out.ValidateAll(); err != nil {
			errs[i] = err
		}
	}
	if workers := min(runtime.GOMAXPROCS(0), 8); workers > 1 && len(routes) >= parallelCheckMin {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < len(routes); i = int(next.Add(1)) - 1 {
					check(i)
				}
			})
		}
		wg.Wait()
	} else {
		for i := range routes {
			check(i)
		}
	}
	for i, err := range errs {
		if err != nil {
			r := routes[i]
			return fmt.Errorf("%w: route configuration %q virtual host %q route %q: %v", ErrInvalidOutput, r.rc, r.vhost, r.out.Name, err)
		}
	}
	return nil
}
