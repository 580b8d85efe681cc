package server

import (
	"context"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// The ACK/NACK table. go-control-plane calls these hooks synchronously on
// each stream's goroutine; they only update the table under s.mu and wake
// the publisher and waiters, never block.

// sentHistory bounds how many recent responses per stream and type are
// remembered to resolve the nonce of an ACK or NACK (a client answers in
// order, usually at once).
const sentHistory = 16

// sent is one response on a stream.
type sent struct {
	nonce   string
	version string
	at      time.Time
	// names are the resources in the response (SotW: the request's names,
	// nil for a wildcard request, resolved against the state on NACK).
	names    []string
	wildcard bool
	// delta only: versions of the resources sent and names removed.
	versions map[string]string
	removed  []string
}

// streamType is what one stream knows about one resource type.
type streamType struct {
	subscribed bool
	history    []sent
	// acked is the last version the proxy accepted (SotW: the type's
	// version; delta: the system version of the last accepted response).
	acked   string
	ackedAt time.Time
	// deltaAcked maps resource name to the version the proxy holds (delta).
	deltaAcked map[string]string
	// nacked is the version of the last rejected response, cleared by a
	// later acceptance; lastNack stays for status.
	nacked   string
	lastNack *Nack
	lastSent *sent
	// subs are a delta stream's subscribed names (bounded, limits.go).
	subs subscriptions
}

// streamKey identifies a stream: go-control-plane numbers state-of-the-world
// and delta streams independently, so the ID alone is ambiguous.
type streamKey struct {
	delta bool
	id    int64
}

// stream is one ADS stream (a proxy connection).
type stream struct {
	id     int64
	delta  bool
	node   string
	opened time.Time
	types  [numKinds]*streamType
}

// nodeRecord keeps a node's history across its streams for status.
type nodeRecord struct {
	id             string
	cluster        string
	connectedSince time.Time
	disconnectedAt time.Time
	streams        map[streamKey]*stream
	delta          bool
	// last per-type view of the node's most recent stream, kept after it
	// disconnects.
	types [numKinds]TypeStatus
}

func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(_ context.Context, id int64, _ string) error {
			s.openStream(id, false)
			return nil
		},
		DeltaStreamOpenFunc: func(_ context.Context, id int64, _ string) error {
			s.openStream(id, true)
			return nil
		},
		StreamClosedFunc:      func(id int64, _ *corev3.Node) { s.closeStream(streamKey{false, id}) },
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.closeStream(streamKey{true, id}) },
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			return s.onRequest(id, req)
		},
		StreamResponseFunc: func(_ context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.onResponse(id, req, resp)
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			return s.onDeltaRequest(id, req)
		},
		StreamDeltaResponseFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.onDeltaResponse(id, req, resp)
		},
	}
}

func (s *Server) openStream(id int64, delta bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &stream{id: id, delta: delta, opened: s.now()}
	for k := range st.types {
		st.types[k] = &streamType{}
	}
	s.streams[streamKey{delta, id}] = st
	s.counts.streams.Add(1)
}

// bindNode attaches the stream to its node on the first request that
// carries one (Envoy sends the node only in its first request); an error
// (a node beyond MaxNodeFieldBytes) ends the stream.
func (s *Server) bindNode(st *stream, n *corev3.Node) error {
	if st.node != "" || n == nil {
		return nil
	}
	if err := checkNode(n.GetId(), n.GetCluster()); err != nil {
		return err
	}
	st.node = n.GetId()
	rec := s.nodes[st.node]
	if rec == nil {
		rec = &nodeRecord{id: st.node, streams: map[streamKey]*stream{}}
		s.nodes[st.node] = rec
	}
	if len(rec.streams) == 0 {
		rec.connectedSince = st.opened
		rec.disconnectedAt = time.Time{}
	}
	rec.cluster = n.GetCluster()
	rec.streams[streamKey{st.delta, st.id}] = st
	s.log.Info("xDS client connected", "node", st.node, "stream", st.id, "delta", st.delta)
	return nil
}

func (s *Server) closeStream(key streamKey) {
	s.mu.Lock()
	st := s.streams[key]
	delete(s.streams, key)
	if st != nil && st.node != "" {
		if rec := s.nodes[st.node]; rec != nil {
			delete(rec.streams, key)
			if len(rec.streams) == 0 {
				rec.disconnectedAt = s.now()
				s.trimDisconnectedLocked()
			}
		}
		s.log.Info("xDS client disconnected", "node", st.node, "stream", key.id, "delta", key.delta)
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.kick()
}

// requestStream locks s.mu and returns the stream of key and the kind of
// typeURL, its node bound. When ok is false the lock is released and err
// (nil for a stream already gone) is the request's answer.
func (s *Server) requestStream(key streamKey, typeURL string, n *corev3.Node) (st *stream, k kind, ok bool, err error) {
	k, known := kindOf(typeURL)
	s.mu.Lock()
	if st = s.streams[key]; st == nil {
		s.mu.Unlock()
		return nil, k, false, nil
	}
	if err := s.bindNode(st, n); err != nil {
		s.mu.Unlock()
		return nil, k, false, err
	}
	if !known {
		s.mu.Unlock()
		return nil, k, false, unservedType(typeURL)
	}
	return st, k, true, nil
}

func (s *Server) onRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	st, k, ok, err := s.requestStream(streamKey{false, id}, req.GetTypeUrl(), req.GetNode())
	if !ok {
		return err
	}
	t := st.types[k]
	t.subscribed = true
	now := s.now()
	switch {
	case req.GetResponseNonce() == "":
		// A first request. A version means the proxy resumes with what it
		// already runs (it reconnected): the cache only answers if that
		// version is stale, so it counts as acknowledged.
		if v := req.GetVersionInfo(); v != "" {
			t.acked, t.ackedAt = v, now
		}
	case t.lastSent == nil || req.GetResponseNonce() != t.lastSent.nonce:
		// An answer to a response this stream was not sent last (a stale
		// nonce: a newer response is on its way and will be answered), or
		// never sent at all. Like go-control-plane, which drops such a
		// request, the table ignores it: a stale NACK would mark content
		// the proxy is about to replace, an invented one content it was
		// never sent.
		s.log.Debug("ignoring an xDS answer with a stale or unknown nonce", "node", st.node, "type", k.String(),
			"nonce", req.GetResponseNonce(), "nack", req.GetErrorDetail() != nil)
	case req.GetErrorDetail() != nil:
		r := t.lastSent
		nack := &Nack{Nonce: r.nonce, Version: r.version, Message: req.GetErrorDetail().GetMessage(), At: now}
		nack.Resources = s.sotwNames(k, r)
		nack.Changed = s.sotwChanged(k, r.version, t.acked, nack.Resources)
		// Without this the cache would see the proxy's old version, answer
		// again with the same rejected content and loop. The proxy is left
		// alone until the next configuration.
		req.VersionInfo = r.version
		t.nacked, t.lastNack = nack.Version, nack
		s.counts.nacks[k].Add(1)
		s.log.Warn("xDS update rejected", "node", st.node, "type", k.String(), "version", nack.Version, "error", nack.Message)
	default:
		// An acceptance supersedes an earlier rejection: the proxy now
		// runs what it acknowledged.
		t.acked, t.ackedAt, t.nacked = t.lastSent.version, now, ""
		s.counts.acks[k].Add(1)
	}
	s.recordStatus(st, k)
	s.notifyLocked()
	s.mu.Unlock()
	s.kick()
	return nil
}

func (s *Server) onResponse(id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	k, known := kindOf(resp.GetTypeUrl())
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[streamKey{false, id}]
	if st == nil || !known {
		return
	}
	r := sent{nonce: resp.GetNonce(), version: resp.GetVersionInfo(), at: s.now()}
	if names := req.GetResourceNames(); len(names) > 0 {
		// Only the names the response could carry, those of the set it
		// was made from: the request's list is the client's, and the
		// history keeps sentHistory of them per type.
		set := s.setByVersion(k, r.version)
		for _, n := range names {
			if _, ok := set.lookup(n); ok {
				r.names = append(r.names, n)
			}
		}
	} else {
		r.wildcard = true
	}
	st.types[k].push(r)
	s.counts.pushes[k].Add(1)
	s.recordStatus(st, k)
}

func (s *Server) onDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	st, k, ok, err := s.requestStream(streamKey{true, id}, req.GetTypeUrl(), req.GetNode())
	if !ok {
		return err
	}
	t := st.types[k]
	if err := t.subs.update(req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe()); err != nil {
		s.mu.Unlock()
		return err
	}
	if !t.subscribed {
		if err := checkInitialVersions(req.GetInitialResourceVersions()); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	first := !t.subscribed
	t.subscribed = true
	if t.deltaAcked == nil {
		t.deltaAcked = map[string]string{}
	}
	now := s.now()
	if first {
		// What the proxy holds from an earlier stream: the protocol
		// sends it in a type's first request only, and taking it from
		// later ones would let one stream grow its map without bound.
		for n, v := range req.GetInitialResourceVersions() {
			t.deltaAcked[n] = v
		}
	}
	for _, n := range req.GetResourceNamesUnsubscribe() {
		delete(t.deltaAcked, n)
	}
	if nonce := req.GetResponseNonce(); nonce != "" {
		r := t.find(nonce)
		switch {
		case r == nil:
			// A nonce this stream was never sent (or sent so long ago that
			// it is forgotten): nothing to acknowledge or reject. Unlike the
			// state of the world, an older delta response is still answered
			// on its own, since it carried changes of its own.
			s.log.Debug("ignoring an xDS answer with an unknown nonce", "node", st.node, "type", k.String(),
				"nonce", nonce, "nack", req.GetErrorDetail() != nil)
		case req.GetErrorDetail() != nil:
			nack := &Nack{Nonce: nonce, Version: r.version, Message: req.GetErrorDetail().GetMessage(), At: now}
			for n := range r.versions {
				nack.Resources = append(nack.Resources, n)
			}
			sortStrings(nack.Resources)
			// A delta response carries only what changed.
			nack.Changed = nack.Resources
			t.nacked, t.lastNack = nack.Version, nack
			s.counts.nacks[k].Add(1)
			s.log.Warn("xDS update rejected", "node", st.node, "type", k.String(), "version", nack.Version, "error", nack.Message)
		case r != nil:
			for n, v := range r.versions {
				t.deltaAcked[n] = v
			}
			for _, n := range r.removed {
				delete(t.deltaAcked, n)
			}
			t.acked, t.ackedAt, t.nacked = r.version, now, ""
			s.counts.acks[k].Add(1)
		}
	}
	s.recordStatus(st, k)
	s.notifyLocked()
	s.mu.Unlock()
	s.kick()
	return nil
}

func (s *Server) onDeltaResponse(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	k, known := kindOf(resp.GetTypeUrl())
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[streamKey{true, id}]
	if st == nil || !known {
		return
	}
	r := sent{
		nonce:    resp.GetNonce(),
		version:  resp.GetSystemVersionInfo(),
		at:       s.now(),
		versions: make(map[string]string, len(resp.GetResources())),
		removed:  resp.GetRemovedResources(),
	}
	// The response carries go-control-plane's versions (hashes of the
	// serialized resources); record ours, from the set it was made of.
	set := s.setByVersion(k, r.version)
	for _, res := range resp.GetResources() {
		v := res.GetVersion()
		if e, ok := set.lookup(res.GetName()); ok {
			v = e.version
		}
		r.versions[res.GetName()] = v
	}
	st.types[k].push(r)
	s.counts.pushes[k].Add(1)
	s.recordStatus(st, k)
}

func (t *streamType) push(r sent) {
	if len(t.history) == sentHistory {
		copy(t.history, t.history[1:])
		t.history = t.history[:sentHistory-1]
	}
	t.history = append(t.history, r)
	t.lastSent = &t.history[len(t.history)-1]
}

func (t *streamType) find(nonce string) *sent {
	for i := len(t.history) - 1; i >= 0; i-- {
		if t.history[i].nonce == nonce {
			return &t.history[i]
		}
	}
	return nil
}

// sotwChanged narrows the resources of a rejected state-of-the-world
// response of kind k at version to those whose content differs from the
// version the proxy last accepted (acked): the proxy rejects a response
// whole, so the fault lies among them, and they are what it does not run.
// When the accepted version is unknown (none yet, or forgotten), every
// resource counts.
func (s *Server) sotwChanged(k kind, version, acked string, names []string) []string {
	rejected, had := s.setByVersion(k, version), s.setByVersion(k, acked)
	if rejected == nil || had == nil {
		return names
	}
	var out []string
	for _, n := range names {
		old, ok := had.items[n]
		if !ok || old.version != rejected.items[n].version {
			out = append(out, n)
		}
	}
	return out
}

// sotwNames lists the resources a SotW response carried: the requested
// names, or every resource of the version it sent.
func (s *Server) sotwNames(k kind, r *sent) []string {
	var out []string
	if !r.wildcard {
		out = append(out, r.names...)
	} else if set := s.setByVersion(k, r.version); set != nil {
		for n := range set.items {
			out = append(out, n)
		}
	}
	sortStrings(out)
	return out
}
