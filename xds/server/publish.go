package server

import (
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// The publisher: one goroutine moves the published state (what the cache
// serves) toward the desired state (the last Update), make-before-break.
// Each step is a pure function of (published, desired, ACK table), so a
// new Update in the middle of a rollout simply changes the target.
//
//  1. make: publish clusters, endpoints and secrets as desired ∪ currently
//     published (desired wins for a name), listeners and routes unchanged.
//     Nothing a proxy runs loses a reference; new targets arrive first.
//  2. switch: once every connected proxy has answered the clusters and
//     endpoints of step 1 (acknowledged, or rejected: waiting longer cannot
//     help it), or the stage timeout passed for a proxy that never
//     answers, publish the desired listeners and routes.
//  3. break: once every connected proxy has acknowledged those listeners
//     and routes, publish exactly the desired state, removing the retained
//     clusters, endpoints and secrets. A proxy that rejected them still
//     runs routes that may use the retained resources, so removal waits
//     (without timeout) until it accepts a later configuration or
//     disconnects.
//
// With no proxy connected the desired state is published at once.

type stage string

const (
	stageMake   stage = "make"
	stageSwitch stage = "switch"
	stageBreak  stage = "break"
	stageDirect stage = "direct"
)

func (s *Server) run() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-s.kickCh:
		case <-timer.C:
		}
		for {
			wait, more := s.step()
			if wait > 0 {
				timer.Reset(wait)
			}
			if !more {
				break
			}
		}
	}
}

// kick wakes the publisher; never blocks.
func (s *Server) kick() {
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
}

// step publishes the next state if one is due. It reports how long to wait
// before re-checking a timeout (0: no timer needed) and whether another
// step may be due at once.
func (s *Server) step() (time.Duration, bool) {
	s.mu.Lock()
	next, st, wait := s.planLocked(s.now())
	s.mu.Unlock()
	if next == nil {
		return wait, false
	}
	sotwState := next.served(false)
	if err := next.consistent(); err != nil {
		// The desired state was checked in Update and the intermediate
		// states only add referenced pairs; reaching this is a bug. Keep
		// serving what is published.
		s.log.Error("xDS snapshot inconsistent; keeping the last good one", "stage", st, "error", err)
		return 0, false
	}
	// Remembered before the caches send anything of it: the ACK table
	// resolves responses to the sets they were made of.
	s.mu.Lock()
	s.remember(kindSecret, sotwState[kindSecret])
	s.remember(kindExtension, sotwState[kindExtension])
	for k := range next {
		s.remember(kind(k), next[k])
	}
	s.mu.Unlock()
	for _, c := range []struct {
		cache cachev3.SnapshotCache
		snap  servedSnapshot
	}{{s.deltaCache, servedSnapshot{*next}}, {s.sotwCache, servedSnapshot{sotwState}}} {
		if err := c.cache.SetSnapshot(s.ctx, nodeKey, c.snap); err != nil {
			s.log.Error("publishing xDS snapshot", "stage", st, "error", err)
			return 0, false
		}
	}
	s.mu.Lock()
	s.published = *next
	s.publishedSotwSecrets = sotwState[kindSecret]
	s.publishedSotwExtensions = sotwState[kindExtension]
	s.publishedOnce = true
	if st == stageMake || st == stageDirect {
		s.makeAt = s.now()
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Debug("xDS snapshot published", "stage", st, "version", next.version())
	return 0, true
}

// planLocked decides the next state to publish, if any.
func (s *Server) planLocked(now time.Time) (*state, stage, time.Duration) {
	if !s.desiredSet {
		return nil, "", 0
	}
	pub, des := s.published, s.desired
	if s.publishedOnce && pub.equal(des) {
		return nil, "", 0
	}
	proxies := s.activeStreamsLocked()
	if len(proxies) == 0 || !s.publishedOnce {
		// Nothing runs an older configuration, or nothing was ever served.
		next := des
		return &next, stageDirect, 0
	}
	mk := pub
	for _, k := range []kind{kindCluster, kindEndpoint, kindSecret, kindExtension} {
		mk[k] = union(des[k], pub[k])
	}
	if !mk.equal(pub) {
		return &mk, stageMake, 0
	}
	if pub[kindListener].version != des[kindListener].version || pub[kindRoute].version != des[kindRoute].version {
		if !s.allAnsweredLocked(proxies, kindCluster, kindEndpoint, kindExtension) {
			left := s.stageTimeout - now.Sub(s.makeAt)
			if left > 0 {
				return nil, "", left
			}
			s.log.Warn("switching routes without every proxy acknowledging new clusters", "timeout", s.stageTimeout, "waiting", s.pendingLocked())
		}
		next := pub
		next[kindListener], next[kindRoute] = des[kindListener], des[kindRoute]
		return &next, stageSwitch, 0
	}
	if !s.allAckedLocked(proxies, kindListener, kindRoute) {
		return nil, "", 0
	}
	next := des
	return &next, stageBreak, 0
}

// union is the desired set plus every published resource the desired set
// no longer has (retained until no proxy can reference it).
func union(des, pub *typeSet) *typeSet {
	extra := false
	for n := range pub.items {
		if _, ok := des.items[n]; !ok {
			extra = true
			break
		}
	}
	if !extra {
		return des
	}
	items := make(map[string]entry, len(des.items)+len(pub.items))
	for n, e := range pub.items {
		items[n] = e
	}
	for n, e := range des.items {
		items[n] = e
	}
	return newTypeSet(items)
}

// activeStreamsLocked lists the streams of identified proxies.
func (s *Server) activeStreamsLocked() []*stream {
	out := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		if st.node != "" {
			out = append(out, st)
		}
	}
	return out
}

// requiredLocked reports whether a stream is expected to hold kind k of
// the published state: it subscribed to it, or it follows references to it
// (endpoints from clusters, routes and secrets from listeners) and there
// are some.
func (s *Server) requiredLocked(st *stream, k kind) bool {
	if st.types[k].subscribed {
		return true
	}
	switch k {
	case kindEndpoint:
		return st.types[kindCluster].subscribed && len(s.servedLocked(st, k).items) > 0
	case kindRoute, kindSecret, kindExtension:
		return st.types[kindListener].subscribed && len(s.servedLocked(st, k).items) > 0
	}
	return false
}

// servedLocked is the published set of kind k as the stream's protocol
// serves it.
func (s *Server) servedLocked(st *stream, k kind) *typeSet {
	if k == kindSecret && !st.delta && s.publishedSotwSecrets != nil {
		return s.publishedSotwSecrets
	}
	if k == kindExtension && !st.delta && s.publishedSotwExtensions != nil {
		return s.publishedSotwExtensions
	}
	return s.published[k]
}

// upToDate reports whether the stream holds exactly set (kind k).
func upToDate(st *stream, k kind, set *typeSet) bool {
	t := st.types[k]
	if !st.delta {
		return t.acked == set.version
	}
	if len(t.deltaAcked) != len(set.items) {
		return false
	}
	for n, e := range set.items {
		if t.deltaAcked[n] != e.version {
			return false
		}
	}
	return true
}

// allAnsweredLocked: every proxy holds the published kinds, or rejected
// one of them (it will not ask for what depends on it).
func (s *Server) allAnsweredLocked(proxies []*stream, kinds ...kind) bool {
	for _, st := range proxies {
		rejected := false
		for _, k := range kinds {
			if st.types[k].nacked != "" && st.types[k].nacked == s.servedLocked(st, k).version {
				rejected = true
			}
		}
		if rejected {
			continue
		}
		for _, k := range kinds {
			if s.requiredLocked(st, k) && !upToDate(st, k, s.servedLocked(st, k)) {
				return false
			}
		}
	}
	return true
}

// allAckedLocked: every proxy accepted the published kinds.
func (s *Server) allAckedLocked(proxies []*stream, kinds ...kind) bool {
	for _, st := range proxies {
		for _, k := range kinds {
			if s.requiredLocked(st, k) && !upToDate(st, k, s.servedLocked(st, k)) {
				return false
			}
		}
	}
	return true
}

// remember keeps recently published sets so a NACK can be resolved to the
// resources it rejected.
func (s *Server) remember(k kind, set *typeSet) {
	const keep = 8
	if n := len(s.history[k]); n > 0 && s.history[k][n-1].version == set.version {
		return
	}
	h := append(s.history[k], set)
	if len(h) > keep {
		h = h[len(h)-keep:]
	}
	s.history[k] = h
}

func (s *Server) setByVersion(k kind, version string) *typeSet {
	for i := len(s.history[k]) - 1; i >= 0; i-- {
		if s.history[k][i].version == version {
			return s.history[k][i]
		}
	}
	return nil
}
