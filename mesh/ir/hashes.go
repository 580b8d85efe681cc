package ir

import "slices"

// Hashes computes the content hashes of IR objects, each object once: IR
// values never change once built, so an object's hash is remembered by
// the object itself (its pointer) for as long as successive Configs hold
// it. A producer that reuses unchanged objects therefore costs only the
// hashing of what is new; one that rebuilds everything costs one hash per
// object, and equal content still gives equal hashes.
//
// The consumers of one stream of Configs (the validator, the Envoy
// translator) share one Hashes. Its owner calls Next once per Config,
// before any hash of it is asked for; an object not asked for since the
// previous Next is forgotten then, unless nothing of its type was asked
// for. Not safe for concurrent use; the zero value is ready.
type Hashes struct {
	enc       encoder
	routes    memo[*Route, Hash]
	vhosts    memo[*VirtualHost, vhostHashes]
	tables    memo[*RouteTable, Hash]
	listeners memo[*Listener, Hash]
	clusters  memo[*Cluster, [2]Hash]
	secrets   memo[*Secret, Hash]
	// lists are the route lists hashed since Next, by their first route
	// and length (see virtualHost).
	lists map[listKey]listHashes
}

type listKey struct {
	first *Route
	n     int
}

// listHashes are a route list's routes, their hashes and the list's hash.
type listHashes struct {
	routes []*Route
	hashes []Hash
	list   Hash
}

// Next starts the next Config: objects not hashed since the previous call
// are forgotten.
func (h *Hashes) Next() {
	h.routes.rotate()
	h.vhosts.rotate()
	h.tables.rotate()
	h.listeners.rotate()
	h.clusters.rotate()
	h.secrets.rotate()
	clear(h.lists)
}

// Route returns the hash of r.
func (h *Hashes) Route(r *Route) Hash {
	if v, ok := h.routes.get(r); ok {
		return v
	}
	// The encoder works on a copy on the stack, and its buffer goes back
	// once: appends to a buffer held in the heap would each pass the
	// collector's write barrier while it marks, and routes come by the
	// thousand.
	e := h.enc
	e.route(r)
	v := e.sum()
	h.enc = e
	h.routes.put(r, v)
	return v
}

// vhostHashes are a virtual host's hash and its routes' hashes, which
// consumers walking the routes take from here: one lookup per virtual
// host rather than one per route; list is the hash of its route list
// alone (RouteList).
type vhostHashes struct {
	hash   Hash
	list   Hash
	routes []Hash
}

// VirtualHost returns the hash of vh, which covers its routes' hashes.
func (h *Hashes) VirtualHost(vh *VirtualHost) Hash { return h.virtualHost(vh).hash }

// VirtualHostRoutes returns the hashes of vh's routes, in order (zero for
// a nil route). The slice is shared: callers must not modify it.
func (h *Hashes) VirtualHostRoutes(vh *VirtualHost) []Hash { return h.virtualHost(vh).routes }

// RouteList returns the hash of vh's list of routes alone (their hashes in
// order), without its name and domains: the virtual hosts of a Gateway's
// HTTP and HTTPS listeners usually hold the very same list.
func (h *Hashes) RouteList(vh *VirtualHost) Hash { return h.virtualHost(vh).list }

func (h *Hashes) virtualHost(vh *VirtualHost) vhostHashes {
	if v, ok := h.vhosts.get(vh); ok {
		return v
	}
	// Virtual hosts of several listeners (a Gateway's HTTP and HTTPS
	// ones, commonly) hold the very same routes in the same order: the
	// first one's route hashes and list hash serve the others, found
	// with one lookup and a walk over the two lists of pointers rather
	// than one memo lookup per route.
	var key listKey
	if len(vh.Routes) > 0 {
		key = listKey{vh.Routes[0], len(vh.Routes)}
	}
	same, reuse := h.lists[key]
	reuse = reuse && slices.Equal(same.routes, vh.Routes)
	var routes []Hash
	if reuse {
		routes = same.hashes
	} else {
		// The routes' hashes first: they share the encoder.
		routes = make([]Hash, len(vh.Routes))
		for i, r := range vh.Routes {
			if r != nil {
				routes[i] = h.Route(r)
			}
		}
	}
	e := h.enc // on the stack, as in Route
	e.start(tagVirtualHost)
	e.str(vh.Name)
	e.strs(vh.Domains)
	e.uint(uint64(len(routes)))
	for i, r := range routes {
		if e.present(vh.Routes[i] != nil) {
			e.hash(r)
		}
	}
	v := vhostHashes{hash: e.sum(), routes: routes}
	if reuse {
		v.list = same.list
	} else {
		e.start(tagRouteList)
		e.uint(uint64(len(routes)))
		for i, r := range routes {
			if e.present(vh.Routes[i] != nil) {
				e.hash(r)
			}
		}
		v.list = e.sum()
		if key.n > 0 {
			if h.lists == nil {
				h.lists = map[listKey]listHashes{}
			}
			h.lists[key] = listHashes{routes: vh.Routes, hashes: routes, list: v.list}
		}
	}
	h.enc = e
	h.vhosts.put(vh, v)
	return v
}

// RouteTable returns the hash of rt, which covers its virtual hosts'
// hashes.
func (h *Hashes) RouteTable(rt *RouteTable) Hash {
	if v, ok := h.tables.get(rt); ok {
		return v
	}
	vhosts := make([]Hash, len(rt.VirtualHosts))
	for i, vh := range rt.VirtualHosts {
		if vh != nil {
			vhosts[i] = h.VirtualHost(vh)
		}
	}
	e := &h.enc
	e.start(tagRouteTable)
	e.str(rt.Name)
	e.uint(uint64(len(vhosts)))
	for i, v := range vhosts {
		if e.present(rt.VirtualHosts[i] != nil) {
			e.hash(v)
		}
	}
	v := e.sum()
	h.tables.put(rt, v)
	return v
}

// Listener returns the hash of l: its own fields and its chains, which
// name their route tables without covering them.
func (h *Hashes) Listener(l *Listener) Hash {
	if v, ok := h.listeners.get(l); ok {
		return v
	}
	h.enc.listener(l)
	v := h.enc.sum()
	h.listeners.put(l, v)
	return v
}

// Cluster returns the hashes of c's settings (every field but the
// endpoints) and of its endpoints.
func (h *Hashes) Cluster(c *Cluster) (settings, endpoints Hash) {
	if v, ok := h.clusters.get(c); ok {
		return v[0], v[1]
	}
	h.enc.cluster(c)
	settings = h.enc.sum()
	h.enc.endpoints(c)
	endpoints = h.enc.sum()
	h.clusters.put(c, [2]Hash{settings, endpoints})
	return settings, endpoints
}

// Secret returns the hash of s.
func (h *Hashes) Secret(s *Secret) Hash {
	if v, ok := h.secrets.get(s); ok {
		return v
	}
	h.enc.secret(s)
	v := h.enc.sum()
	h.secrets.put(s, v)
	return v
}

// PolicyListener returns the hash of l.
func (h *Hashes) PolicyListener(l *PolicyListener) Hash {
	h.enc.policyListener(l)
	return h.enc.sum()
}

// HTTPPolicy returns the hash of p.
func (h *Hashes) HTTPPolicy(p *HTTPPolicy) Hash {
	h.enc.httpPolicy(p)
	return h.enc.sum()
}

// KafkaPolicy returns the hash of p.
func (h *Hashes) KafkaPolicy(p *KafkaPolicy) Hash {
	h.enc.kafkaPolicy(p)
	return h.enc.sum()
}

// memo remembers hashes by object across one Next: cur holds what was
// asked for since the last Next, old what was asked for before it.
type memo[K comparable, V any] struct{ cur, old map[K]V }

func (m *memo[K, V]) get(k K) (V, bool) {
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	if v, ok := m.old[k]; ok {
		m.put(k, v)
		return v, true
	}
	var zero V
	return zero, false
}

func (m *memo[K, V]) put(k K, v V) {
	if m.cur == nil {
		// Sized for about as many objects as last time.
		m.cur = make(map[K]V, len(m.old))
	}
	m.cur[k] = v
}

// reserve makes room for n objects asked for since the last Next.
func (m *memo[K, V]) reserve(n int) {
	if m.cur == nil {
		m.cur = make(map[K]V, max(n, len(m.old)))
	}
}

// rotate forgets what was not asked for since the previous rotate. When
// nothing of the kind was asked for (its consumers found the whole list
// unchanged by other means), it forgets nothing.
func (m *memo[K, V]) rotate() {
	if m.cur != nil {
		m.old, m.cur = m.cur, nil
	}
}
