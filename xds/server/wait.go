package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrSuperseded is returned by WaitForAck when a newer Update replaced the
// version before every proxy acknowledged it.
var ErrSuperseded = errors.New("configuration superseded by a newer update")

// NackError is returned by WaitForAck when a proxy rejected part of the
// configuration.
type NackError struct {
	Node    string
	TypeURL string
	Nack    Nack
}

func (e *NackError) Error() string {
	return fmt.Sprintf("node %q rejected %s version %s: %s", e.Node, e.TypeURL, e.Nack.Version, e.Nack.Message)
}

// WaitForAck blocks until every connected proxy has acknowledged every
// resource type of the given Update version (so the proxies run exactly
// that configuration), a proxy rejects part of it (*NackError), a newer
// Update supersedes it (ErrSuperseded), or ctx ends. With no proxy
// connected it returns once the version is published. Safe from any
// goroutine, any number of concurrent waiters.
func (s *Server) WaitForAck(ctx context.Context, version string) error {
	for {
		s.mu.Lock()
		ch := s.changed
		done, err := s.ackedLocked(version)
		s.mu.Unlock()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for proxies to acknowledge version %s: %w", version, ctx.Err())
		case <-ch:
		}
	}
}

func (s *Server) ackedLocked(version string) (bool, error) {
	if version != "" && version == s.completed {
		return true, nil
	}
	if !s.desiredSet || s.desired.version() != version {
		return false, fmt.Errorf("waiting for version %s: %w", version, ErrSuperseded)
	}
	proxies := s.activeStreamsLocked()
	sort.Slice(proxies, func(i, j int) bool { return proxies[i].node < proxies[j].node })
	for _, st := range proxies {
		for k := range numKinds {
			t := st.types[k]
			if t.nacked != "" && s.onPathLocked(k, t.nacked) {
				return false, &NackError{Node: st.node, TypeURL: kindTypeURL[k], Nack: *t.lastNack}
			}
		}
	}
	if !s.publishedOnce || !s.published.equal(s.desired) {
		return false, nil
	}
	kinds := []kind{kindCluster, kindEndpoint, kindListener, kindRoute, kindSecret, kindExtension}
	if !s.allAckedLocked(proxies, kinds...) {
		return false, nil
	}
	s.completed = version
	return true, nil
}

// onPathLocked reports whether version of kind k belongs to the rollout of
// the desired state: the desired version itself, or the published
// make-step superset of it (desired plus retained resources). A rejected
// older version that is about to be replaced does not count.
func (s *Server) onPathLocked(k kind, version string) bool {
	if version == s.desired[k].version {
		return true
	}
	if k == kindSecret && version == s.desired.sotwSecrets().version {
		return true
	}
	if k == kindExtension && version == s.desired.sotwExtensions().version {
		return true
	}
	pub := s.published[k]
	if version != pub.version || (k != kindCluster && k != kindEndpoint && k != kindSecret && k != kindExtension) {
		return false
	}
	for n, e := range s.desired[k].items {
		if pub.items[n].version != e.version {
			return false
		}
	}
	return true
}

// Changed returns a channel that is closed at the next change of the
// ACK/NACK table (an answer from a proxy, a proxy connecting or going away)
// or of what is published. A waiter takes the channel first, then reads
// Status, and waits on the channel only if what it read does not satisfy
// it; so no change is missed and nothing polls. Safe from any goroutine.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// notifyLocked wakes every WaitForAck and every Changed waiter.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// pendingLocked describes what the rollout waits for (for logs and
// errors).
func (s *Server) pendingLocked() string {
	var parts []string
	for _, st := range s.activeStreamsLocked() {
		for k := range numKinds {
			if s.requiredLocked(st, kind(k)) && !upToDate(st, kind(k), s.servedLocked(st, kind(k))) {
				parts = append(parts, fmt.Sprintf("%s:%s", st.node, kind(k).short()))
			}
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
