package translator

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// A cold translation (nothing to reuse) builds every route of every
// table. Building a route reads only the route and the cluster names, so
// from hundreds of routes on, the routes are built ahead of the walk over
// listeners and tables, on up to GOMAXPROCS goroutines, and each is
// validated by the goroutine that built it. Meanwhile the calling
// goroutine builds the clusters, which no route reads. The walk then places them as
// it would have built them: in the same order, with the same warnings at
// the same place in the list, and a validation failure is reported for
// the first failing route in build order (checkRoutes). A route the walk
// does not place (its virtual host lost every domain) was built for
// nothing, and its validation result is not looked at.

// prebuildMin is the number of routes (in the largest table) from which
// a cold translation builds them ahead; a variable so a test can compare
// with the routes built in place.
var prebuildMin = parallelCheckMin

// prebuilt is a route built ahead of the walk.
type prebuilt struct {
	in       *ir.Route
	out      *routev3.Route // nil: the route is dropped (see route)
	warnings []Warning
	err      error // out failed Envoy validation
}

// prebuildRoutes starts building every distinct route of cfg's route
// tables ahead of the walk, when there are enough of them to share out,
// and returns a function that waits until they are built. In between,
// the calling goroutine may do work that touches neither the routes nor
// what building them reads (the cluster names).
func (b *builder) prebuildRoutes() (wait func()) {
	workers := min(runtime.GOMAXPROCS(0), 8)
	if workers < 2 {
		return func() {}
	}
	n := b.cfg.LargestRouteTable()
	if n < prebuildMin {
		return func() {}
	}
	// The routes to build, each once, in one allocation, indexed by
	// content hash.
	jobs := make([]prebuilt, 0, n)
	index := make(map[ir.Hash]int, n)
	for _, l := range b.cfg.Listeners {
		for _, ch := range l.Chains {
			if ch == nil || ch.Routes == nil {
				continue
			}
			for _, vh := range ch.Routes.VirtualHosts {
				if vh == nil {
					continue
				}
				vhHashes := b.hashes.VirtualHostRoutes(vh)
				for i, r := range vh.Routes {
					if _, dup := index[vhHashes[i]]; r == nil || dup {
						continue
					}
					index[vhHashes[i]] = len(jobs)
					jobs = append(jobs, prebuilt{in: r})
				}
			}
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			// A builder of one route at a time: what building a route
			// reads, and its own list of warnings.
			rb := &builder{clusterNames: b.clusterNames, invalidBackend: b.invalidBackend, out: &Resources{}}
			for i := int(next.Add(1)) - 1; i < len(jobs); i = int(next.Add(1)) - 1 {
				p := &jobs[i]
				rb.out.Warnings = rb.out.Warnings[:0]
				p.out = rb.route(p.in)
				p.warnings = slices.Clone(rb.out.Warnings)
				if p.out != nil {
					if validating != nil {
						validating(p.out)
					}
					p.err = p.out.ValidateAll()
				}
			}
		})
	}
	return func() {
		wg.Wait()
		b.prebuilt, b.prebuiltIndex = jobs, index
	}
}

// placeRoute returns route r (of hash h) for a virtual host of route
// configuration rc: built ahead, or built now. Either way its warnings
// are recorded now, and it joins the routes checkRoutes reports on.
func (b *builder) placeRoute(rc, vhost string, r *ir.Route, h ir.Hash) *routev3.Route {
	if i, ok := b.prebuiltIndex[h]; ok {
		p := &b.prebuilt[i]
		b.out.Warnings = append(b.out.Warnings, p.warnings...)
		if p.out != nil {
			b.unchecked = append(b.unchecked, uncheckedRoute{out: p.out, rc: rc, vhost: vhost, checked: true, err: p.err})
		}
		return p.out
	}
	out := b.route(r)
	if out != nil {
		if validating != nil {
			validating(out)
		}
		b.unchecked = append(b.unchecked, uncheckedRoute{out: out, rc: rc, vhost: vhost})
	}
	return out
}
