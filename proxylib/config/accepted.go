package config

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Accepted is the accepted state of one resource type, in the form it
// arrived in: enough to replay it into another store (a restarted worker
// process) or to put it back after a peer refused an update (Restore).
type Accepted struct {
	TypeURL   string
	Version   string
	Received  bool
	Resources []*anypb.Any // sorted by name
}

// Accepted returns the accepted resources of typeURL. The returned value
// is the caller's; the resources' bytes are shared and must not be
// modified.
func (s *Store) Accepted(typeURL string) Accepted {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.types[typeURL]
	if ts == nil {
		return Accepted{TypeURL: typeURL}
	}
	names := make([]string, 0, len(ts.entries))
	for n := range ts.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	a := Accepted{TypeURL: typeURL, Version: ts.version, Received: ts.received, Resources: make([]*anypb.Any, 0, len(names))}
	for _, n := range names {
		a.Resources = append(a.Resources, &anypb.Any{TypeUrl: typeURL, Value: []byte(ts.entries[n].key)})
	}
	return a
}

// AcceptedAll returns the accepted state of every type, in the order a
// fresh store warms fastest from: what listeners and clusters reference
// first, so each listener and cluster is activated on arrival.
func (s *Store) AcceptedAll() []Accepted {
	out := make([]Accepted, 0, len(replayOrder))
	for _, t := range replayOrder {
		if a := s.Accepted(t); a.Received {
			out = append(out, a)
		}
	}
	return out
}

// Restore makes a's resources the whole set of its type again: an
// accepted update is undone when a peer sharing the configuration
// refused it, so all of them keep serving the same, last good,
// configuration. Resources whose bytes did not change keep their decoded
// form and handlers (nothing is rebuilt or drained). nack, if not nil, is
// recorded as the type's last NACK, as if this store had refused the
// update of nackVersion itself.
func (s *Store) Restore(a Accepted, nackVersion string, nack error) error {
	if err := s.Update(a.TypeURL, a.Version, a.Resources, nil, true); err != nil {
		return fmt.Errorf("restoring the accepted %s: %w", kindOf(a.TypeURL), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.types[a.TypeURL]
	ts.received = a.Received
	if nack != nil {
		ts.nackErr, ts.nackVer = nack.Error(), nackVersion
	}
	return nil
}

// replayOrder lists the types dependencies first.
var replayOrder = []string{resource.SecretType, resource.ExtensionConfigType, resource.EndpointType,
	resource.ClusterType, resource.RouteType, resource.ListenerType}
