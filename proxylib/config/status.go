package config

import (
	"sort"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TypeStatus is the applied state of one resource type.
type TypeStatus struct {
	TypeURL     string    `json:"type_url"`
	Version     string    `json:"version_info"`
	LastUpdated time.Time `json:"last_updated,omitempty"`
	Names       []string  `json:"names"`
	// LastNACK is the error detail of the last rejected update, cleared by
	// the next accepted one.
	LastNACK        string `json:"last_nack,omitempty"`
	LastNACKVersion string `json:"last_nack_version,omitempty"`
}

// ListenerStatus says whether a listener serves or warms.
type ListenerStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"` // "active", "warming" or "active (update warming)"
}

// Status is the applied configuration, for the admin endpoint.
type Status struct {
	Ready     bool             `json:"ready"`
	Types     []TypeStatus     `json:"resources"`
	Listeners []ListenerStatus `json:"listeners"`
}

// Status reports the applied versions and listener states.
func (s *Store) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Ready: s.ready.Load()}
	for _, t := range allTypes {
		ts := s.types[t]
		names := make([]string, 0, len(ts.entries))
		for n := range ts.entries {
			names = append(names, n)
		}
		sort.Strings(names)
		st.Types = append(st.Types, TypeStatus{TypeURL: t, Version: ts.version, LastUpdated: ts.updated,
			Names: names, LastNACK: ts.nackErr, LastNACKVersion: ts.nackVer})
	}
	for n, e := range s.types[resource.ListenerType].entries {
		l := e.value.(*resource.Listener)
		state := "warming"
		if a := s.active[n]; a == l {
			state = "active"
		} else if a != nil {
			state = "active (update warming)"
		}
		st.Listeners = append(st.Listeners, ListenerStatus{Name: n, Address: l.Address, State: state})
	}
	sort.Slice(st.Listeners, func(i, j int) bool { return st.Listeners[i].Name < st.Listeners[j].Name })
	return st
}
