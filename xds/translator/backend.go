package translator

import (
	"math"
	"math/bits"
	"net/http"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// forward routes the request to the route's backends.
//
// Backends of weight 0 never receive traffic and are left out. Unresolved
// backends (no cluster) keep their share: they become one weighted entry
// on a cluster name that is never defined, and the route's
// cluster_not_found_response_code is 500, so exactly their share of
// requests fails with 500 as Gateway API requires. When nothing resolvable
// carries weight, the route answers 500 directly. A single resolvable
// backend without its own header edits is a plain cluster.
//
// The route timeout is always written: the IR's 0 ("no timeout") becomes
// "0s", which disables Envoy's 15-second default that would otherwise cut
// long gRPC streams and slow downloads.
//
// The backend timeout becomes retry_policy.per_try_timeout, the way Envoy
// Gateway maps HTTPRoute backendRequest once retries exist: Envoy arms it
// for every upstream attempt (the first one included) and disarms it once
// the response starts, and without retry_on there is no second attempt.
// It is left out where Envoy would ignore it: at or above a non-zero route
// timeout, which then fires first. Envoy Gateway puts backendRequest into
// the route timeout when a rule has no retries; that would also cut a
// response still streaming at that point and drop the request timeout,
// which GEP-1742 keeps separate.
func (b *builder) forward(r *ir.Route, out *routev3.Route) *problem {
	var (
		// valid indexes into r.Backends. Its first entries live in buf,
		// on the stack: a slice grown by append from nil is moved to
		// the heap once passed on, one allocation per action.
		buf          [4]int
		valid        = buf[:0]
		invalid      uint64
		backendEdits bool
	)
	for i, wb := range r.Backends {
		switch {
		case wb.Weight == 0:
		case wb.Cluster == "":
			invalid += uint64(wb.Weight)
		default:
			valid = append(valid, i)
			backendEdits = backendEdits || wb.RequestHeaders != nil || wb.ResponseHeaders != nil
		}
	}
	if len(valid) == 0 {
		out.Action = directResponse(500, "")
		return nil
	}
	if b.deniedByIngress(r, valid) {
		out.Action = directResponse(http.StatusForbidden, accessDenied)
		return nil
	}
	req, p := b.headerEditsOf("requestHeaders", r.RequestHeaders, true)
	if p != nil {
		return p
	}
	// The messages every forwarding route has, in one allocation: routes
	// come by the thousand.
	parts := b.forwardParts.get(b.cold)
	ra := &parts.action
	ra.Timeout = b.timeoutOf(r.Timeout)
	ra.RetryPolicy = retryPolicy(r)
	ra.RequestMirrorPolicies = b.mirrorPolicies(r)
	if len(valid) == 1 && invalid == 0 && !backendEdits {
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: b.clusterNames[r.Backends[valid[0]].Cluster]}
	} else {
		wc, p := b.weightedClusters(r, valid, invalid)
		if p != nil {
			return p
		}
		ra.ClusterSpecifier = wc
		if invalid > 0 {
			ra.ClusterNotFoundResponseCode = routev3.RouteAction_INTERNAL_SERVER_ERROR
		}
	}
	host := req.host
	if rw := r.Rewrite; rw != nil {
		if rw.Hostname != "" {
			// An explicit rewrite beats a Host set by a header modifier.
			host = hostLiteral(rw.Hostname)
		}
		pe, p := pathEditOf("rewrite.path", rw.Path, r.Match.Path)
		if p != nil {
			return p
		}
		switch {
		case pe.regex != nil:
			ra.RegexRewrite = pe.regex
		case pe.prefix != "":
			ra.PrefixRewrite = pe.prefix
		}
	}
	if host != "" {
		ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: host}
	}
	out.RequestHeadersToAdd, out.RequestHeadersToRemove = req.add, req.remove
	parts.route.Route = ra
	out.Action = &parts.route
	return nil
}

// forwardParts are the messages of a forwarding route's action.
type forwardParts struct {
	route  routev3.Route_Route
	action routev3.RouteAction
}

// splitDuration is d as google.protobuf.Duration's fields, as
// durationpb.New computes them.
func splitDuration(d time.Duration) (int64, int32) {
	n := d.Nanoseconds()
	s := n / int64(time.Second)
	return s, int32(n - s*int64(time.Second))
}

// weightedParts are the messages of a weighted_clusters specifier, with
// room for the list of the common split between two backends (or one
// backend and the unresolved ones) in the same allocation.
type weightedParts struct {
	spec routev3.RouteAction_WeightedClusters
	wc   routev3.WeightedCluster
	list [2]*routev3.WeightedCluster_ClusterWeight
}

// weightKey identifies a weighted_clusters entry without header edits:
// its cluster name and weight are all it holds.
type weightKey struct {
	name   string
	weight uint32
}

// clusterWeight returns the entry sending weight to the cluster named
// name, made once per translation: actions of different rules commonly
// split between the same clusters alike (the same Services with the same
// weights), and an entry is 200-odd bytes a snapshot would otherwise hold
// once per action. It is shared like the actions are (action.go): never
// modified once built.
func (b *builder) clusterWeight(name string, weight uint32) *routev3.WeightedCluster_ClusterWeight {
	k := weightKey{name: name, weight: weight}
	if cw := b.weights[k]; cw != nil {
		return cw
	}
	parts := new(struct {
		cw    routev3.WeightedCluster_ClusterWeight
		value wrapperspb.UInt32Value
	})
	parts.value.Value = weight
	parts.cw.Name, parts.cw.Weight = name, &parts.value
	if b.weights == nil {
		b.weights = make(map[weightKey]*routev3.WeightedCluster_ClusterWeight)
	}
	b.weights[k] = &parts.cw
	return &parts.cw
}

// timeoutOf returns d as a google.protobuf.Duration, made once per
// translation for each distinct value (most routes have the same few):
// shared like clusterWeight's entries.
func (b *builder) timeoutOf(d time.Duration) *durationpb.Duration {
	if t := b.timeouts[d]; t != nil {
		return t
	}
	t := new(durationpb.Duration)
	t.Seconds, t.Nanos = splitDuration(d)
	if b.timeouts == nil {
		b.timeouts = make(map[time.Duration]*durationpb.Duration)
	}
	b.timeouts[d] = t
	return t
}

// usesInvalidBackend reports whether the route's output names the
// invalid-backend cluster: it forwards, and both resolved and unresolved
// backends carry weight (see forward).
func usesInvalidBackend(r *ir.Route) bool {
	if r.Redirect != nil || r.DirectResponse != nil {
		return false
	}
	var valid, invalid bool
	for _, wb := range r.Backends {
		switch {
		case wb == nil || wb.Weight == 0:
		case wb.Cluster == "":
			invalid = true
		default:
			valid = true
		}
	}
	return valid && invalid
}

// weightedClusters splits traffic. Envoy rejects a weight sum above
// MaxUint32, so larger sums are scaled down proportionally (every entry
// keeps at least weight 1).
func (b *builder) weightedClusters(r *ir.Route, valid []int, invalid uint64) (*routev3.RouteAction_WeightedClusters, *problem) {
	n := len(valid)
	if invalid > 0 {
		n++
	}
	// Routes carry these by the thousand: a list of up to two entries
	// lives in parts, a longer one takes an allocation of its own.
	// Entries without header edits are shared (clusterWeight).
	parts := b.weightedParts.get(b.cold)
	wc := &parts.wc
	if n <= len(parts.list) {
		wc.Clusters = parts.list[:0:n]
	} else {
		wc.Clusters = make([]*routev3.WeightedCluster_ClusterWeight, 0, n)
	}
	var buf [4]uint64
	weights := buf[:0]
	for _, i := range valid {
		weights = append(weights, uint64(r.Backends[i].Weight))
	}
	if invalid > 0 {
		weights = append(weights, invalid)
	}
	scaleWeights(weights)
	parts.spec.WeightedClusters = wc
	for i, bi := range valid {
		wb := r.Backends[bi]
		name := b.clusterNames[wb.Cluster]
		if wb.RequestHeaders == nil && wb.ResponseHeaders == nil {
			wc.Clusters = append(wc.Clusters, b.clusterWeight(name, uint32(weights[i])))
			continue
		}
		field := fieldf("backends[%d]", bi)
		req, p := b.headerEditsOf(field+".requestHeaders", wb.RequestHeaders, true)
		if p != nil {
			return nil, p
		}
		if req.host != "" {
			return nil, problemf(field+".requestHeaders", "a per-backend Host edit is outside the supported Envoy subset")
		}
		resp, p := b.headerEditsOf(field+".responseHeaders", wb.ResponseHeaders, false)
		if p != nil {
			return nil, p
		}
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:                    name,
			Weight:                  wrapperspb.UInt32(uint32(weights[i])),
			RequestHeadersToAdd:     req.add,
			RequestHeadersToRemove:  req.remove,
			ResponseHeadersToAdd:    resp.add,
			ResponseHeadersToRemove: resp.remove,
		})
	}
	if invalid > 0 {
		wc.Clusters = append(wc.Clusters, b.clusterWeight(b.invalidBackend, uint32(weights[len(weights)-1])))
	}
	return &parts.spec, nil
}

// scaleWeights scales weights down in place until their sum fits in a
// uint32: each becomes floor(w*budget/sum), at least 1, where budget leaves
// room for the rounding up to 1.
func scaleWeights(w []uint64) {
	var sum uint64
	for _, x := range w {
		sum += x
	}
	if sum <= math.MaxUint32 {
		return
	}
	budget := uint64(math.MaxUint32) - uint64(len(w))
	for i, x := range w {
		hi, lo := bits.Mul64(x, budget)
		q, _ := bits.Div64(hi, lo, sum) // x <= sum, so hi < sum: no overflow
		w[i] = max(1, q)
	}
}
