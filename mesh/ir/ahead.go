package ir

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Work ahead on all cores. A Config rebuilt from scratch (the agent's
// first, or one after its input changed wholesale) holds thousands of
// routes nothing has hashed or checked yet. Hashing a route and checking
// it read only the route (and the Config's cluster names, fixed by
// then), so the Validator does both for every such route on up to
// GOMAXPROCS goroutines before its walk (aheadMin routes at least), and
// the walk finds them done: a route's hash in Hashes, and a route that
// passed among the routes that passed (routesOK), whose cluster
// references the walk still checks. A route that failed is checked again
// by the walk, which reports its problems where it finds them, so errors
// are exactly those of a walk without the work ahead. Then the virtual
// hosts the walk would check route by route are looked at the same way:
// one where the walk would find nothing (every route passed, names are
// unique, every cluster named exists) is handed to it with the clusters
// it uses, and the walk does not visit its routes. A one-route change has
// too little new to share out and stays on the calling goroutine.

// aheadMin is the number of new routes from which they are hashed and
// checked ahead; a variable so tests can force either path.
var aheadMin = 256

// maxAheadWorkers bounds the goroutines working ahead.
const maxAheadWorkers = 8

// inParallel runs do(i) for every i in [0, n) on up to workers goroutines.
func inParallel(n, workers int, do func(worker, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				do(w, i)
			}
		})
	}
	wg.Wait()
}

// aheadWorkers is how many goroutines work ahead (below 2: none).
func aheadWorkers() int { return min(runtime.GOMAXPROCS(0), maxAheadWorkers) }

// routeTables calls f with every route table of c's chains.
func routeTables(c *Config, f func(rt *RouteTable)) {
	for _, l := range c.Listeners {
		if l == nil {
			continue
		}
		for _, ch := range l.Chains {
			if ch != nil && ch.Routes != nil {
				f(ch.Routes)
			}
		}
	}
}

// LargestRouteTable is the number of routes in c's largest route table.
// The tables of one Gateway's listeners share most of their routes, so it
// is about the number of distinct routes, and consumers size their
// per-route indexes with it rather than growing them step by step
// through thousands of routes.
func (c *Config) LargestRouteTable() int {
	n := 0
	routeTables(c, func(rt *RouteTable) {
		routes := 0
		for _, vh := range rt.VirtualHosts {
			if vh != nil {
				routes += len(vh.Routes)
			}
		}
		n = max(n, routes)
	})
	return n
}

// hashRoutesAhead hashes every route of c's virtual hosts that h does not
// know yet, on several goroutines when there are enough of them.
func (h *Hashes) hashRoutesAhead(c *Config) {
	workers := aheadWorkers()
	if workers < 2 {
		return
	}
	// A route queued is put with a zero hash at once, so one shared by
	// several virtual hosts is queued once; every queued route gets its
	// hash (or is taken out again) before this returns.
	n := c.LargestRouteTable()
	if n < aheadMin {
		return
	}
	var todo []*Route
	if len(h.routes.old) == 0 && len(h.routes.cur) == 0 {
		// Nothing hashed yet: every route is new.
		h.routes.reserve(n)
		todo = make([]*Route, 0, n)
	}
	routeTables(c, func(rt *RouteTable) {
		for _, vh := range rt.VirtualHosts {
			if vh == nil {
				continue
			}
			if _, ok := h.vhosts.get(vh); ok {
				continue // its routes' hashes come with it
			}
			for _, r := range vh.Routes {
				if r == nil {
					continue
				}
				if _, ok := h.routes.get(r); !ok {
					h.routes.put(r, Hash{})
					todo = append(todo, r)
				}
			}
		}
	})
	if len(todo) < aheadMin {
		for _, r := range todo {
			delete(h.routes.cur, r)
		}
		return
	}
	sums := make([]Hash, len(todo))
	encs := make([]encoder, workers)
	inParallel(len(todo), workers, func(w, i int) {
		encs[w].route(todo[i])
		sums[i] = encs[w].sum()
	})
	for i, r := range todo {
		h.routes.put(r, sums[i])
	}
}

// checkRoutesAhead checks every distinct route of c's virtual hosts that
// the walk would check in full (see routeOnce) and records those that
// pass in v.routesOK.
func (v *validator) checkRoutesAhead(c *Config, clusters map[string]bool) {
	workers := aheadWorkers()
	if workers < 2 || v.hashes == nil || v.routesOK == nil {
		return
	}
	v.hashes.hashRoutesAhead(c)
	// A route queued is entered in routesOK as not passed (false, which
	// is what a missing entry means too), so one of the same content is
	// queued once; the entries of those that fail are taken out again.
	n := c.LargestRouteTable()
	if n < aheadMin {
		return
	}
	var todo []*Route
	var hashes []Hash
	if len(v.routesOK) == 0 {
		// Nothing checked yet: every route is new.
		todo, hashes = make([]*Route, 0, n), make([]Hash, 0, n)
	}
	var vhosts []*VirtualHost
	var vhostRoutes [][]Hash
	routeTables(c, func(rt *RouteTable) {
		for _, vh := range rt.VirtualHosts {
			if vh == nil {
				continue
			}
			if used, ok := v.prev[v.hashes.VirtualHost(vh)]; ok && allIn(used, clusters) {
				continue // the walk skips it whole
			}
			vhosts = append(vhosts, vh)
			vhostRoutes = append(vhostRoutes, v.hashes.VirtualHostRoutes(vh))
			for i, h := range vhostRoutes[len(vhostRoutes)-1] {
				if r := vh.Routes[i]; r != nil {
					if _, known := v.routesOK[h]; !known {
						v.routesOK[h] = false
						todo = append(todo, r)
						hashes = append(hashes, h)
					}
				}
			}
		}
	})
	if len(todo) < aheadMin {
		for _, h := range hashes {
			delete(v.routesOK, h)
		}
		return
	}
	passed := make([]bool, len(todo))
	// One validator per goroutine collects the problems of the route it
	// checks; only whether there are any counts here.
	scratch := make([]validator, workers)
	inParallel(len(todo), workers, func(w, i int) {
		s := &scratch[w]
		s.errs = s.errs[:0]
		s.route(object{}, root, todo[i], clusters)
		passed[i] = len(s.errs) == 0
	})
	for i, h := range hashes {
		if passed[i] {
			v.routesOK[h] = true
		} else {
			delete(v.routesOK, h)
		}
	}
	if len(v.routesOK) > maxValidRoutes {
		// Over the bound routeOnce keeps: the walk checks them all.
		clear(v.routesOK)
		return
	}
	v.checkVirtualHostsAhead(vhosts, vhostRoutes, clusters, workers)
}

// checkVirtualHostsAhead finds, among the virtual hosts the walk will
// check route by route (with their routes' hashes), those where it would
// find nothing wrong: every
// route passed (routesOK, read-only by now), route names are unique, and
// every cluster a route names is in clusters. It records the clusters
// each one uses in v.vhostsAhead; the walk takes them for such a virtual
// host instead of visiting its routes.
func (v *validator) checkVirtualHostsAhead(vhosts []*VirtualHost, routeHashes [][]Hash, clusters map[string]bool, workers int) {
	used := make([][]string, len(vhosts))
	ok := make([]bool, len(vhosts))
	inParallel(len(vhosts), workers, func(_, i int) {
		vh := vhosts[i]
		hashes := routeHashes[i]
		names := make(map[string]bool, len(vh.Routes))
		for j, r := range vh.Routes {
			if r == nil || r.Name == "" || names[r.Name] || !v.routesOK[hashes[j]] {
				return
			}
			names[r.Name] = true
			for _, b := range r.Backends {
				if b.Cluster != "" && !clusters[b.Cluster] {
					return
				}
			}
			for _, m := range r.Mirrors {
				if !clusters[m.Cluster] {
					return
				}
			}
		}
		used[i], ok[i] = usedClusters(vh), true
	})
	v.vhostsAhead = make(map[*VirtualHost][]string, len(vhosts))
	for i, vh := range vhosts {
		if ok[i] {
			v.vhostsAhead[vh] = used[i]
		}
	}
}
