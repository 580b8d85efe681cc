package gateway

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A translation that can reuse no compiled route (the Translator's first,
// or one after an object compilation reads changed: see sameWorld)
// compiles every route that names one of our Gateways. Compiling a route
// reads the route object and the index, and writes only its own
// routeState and the cluster memo (t.cluster, which locks clusterMu), so
// from precompileMin such routes on they are compiled ahead of
// processRoutes' walk, on up to GOMAXPROCS goroutines. The walk takes
// them in its own order and does everything else (attachment, status)
// as before. The result is the one compiling in place gives: a route's
// compiled form depends on no route compiled before it, and a memoized
// cluster's content depends only on its key (the Service port, the
// protocol the port speaks and the BackendTLSPolicy targeting it), not on
// which route resolved it first. The IR routes of a route's matches,
// which IR assembly would make on first use, are made ahead too where
// they do not depend on the listener port.

// precompileMin is the number of routes from which a cold translation
// compiles them ahead; a variable so tests can force either path.
var precompileMin = 128

// maxPrecompileWorkers bounds the goroutines compiling ahead.
const maxPrecompileWorkers = 8

// precompile compiles ahead every route of the snapshot that names one of
// our Gateways, when no compiled route can be reused and there are enough
// of them. It returns them per kind (by rank), each at the route's index
// among the snapshot's routes of its kind; nil when it compiled nothing.
func (t *translator) precompile() [][]*routeState {
	if t.prev != nil && t.sameWorld {
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), maxPrecompileWorkers)
	if workers < 2 {
		return nil
	}
	type job struct {
		kind *routeKind
		r    route
		out  *routeState
		i    int
	}
	var jobs []job
	counts := make([]int, len(routeKinds))
	for _, k := range routeKinds {
		i := 0
		for r := range k.routes(t.in) {
			if t.referencesUs(r) {
				jobs = append(jobs, job{kind: k, r: r, i: i})
			}
			i++
		}
		counts[k.rank] = i
	}
	if len(jobs) < precompileMin {
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(jobs)) {
		wg.Go(func() {
			for n := int(next.Add(1)) - 1; n < len(jobs); n = int(next.Add(1)) - 1 {
				rs := t.compileRoute(jobs[n].kind, jobs[n].r)
				makeIRRoutes(rs)
				jobs[n].out = rs
			}
		})
	}
	wg.Wait()
	out := make([][]*routeState, len(routeKinds))
	for _, j := range jobs {
		if out[j.kind.rank] == nil {
			out[j.kind.rank] = make([]*routeState, counts[j.kind.rank])
		}
		out[j.kind.rank][j.i] = j.out
	}
	return out
}

// makeIRRoutes makes the IR route of every match of rs's valid rules
// that IR assembly (builder.route) would make the same on any port, so
// assembly finds it made.
func makeIRRoutes(rs *routeState) {
	for _, rule := range rs.rules {
		if !rule.valid() || rule.redirect != nil && rule.redirect.portDependent() {
			continue
		}
		for _, m := range rule.matches {
			m.route = newRoute(m, 0)
		}
	}
}
