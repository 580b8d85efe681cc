package server

import (
	"sort"
	"time"
)

// NodeStatus is what the server knows about one proxy (one node ID),
// connected or not. The agent shows it (nodemesh status) and maps NACKs
// back to the objects they came from: resource names are the IR's
// hierarchical names.
type NodeStatus struct {
	ID      string
	Cluster string
	// Connected is true while the node has at least one open stream.
	Connected      bool
	ConnectedSince time.Time
	// DisconnectedAt is zero while connected.
	DisconnectedAt time.Time
	// Streams counts open streams (more than one means several proxies
	// share a node ID, or a reconnect is overlapping the old stream).
	Streams int
	// Delta is true if the most recent stream uses incremental xDS.
	Delta bool
	// Types has one entry per resource type the node subscribed to, in
	// delivery order (clusters, endpoints, listeners, routes, secrets).
	Types []TypeStatus
}

// TypeStatus is the exchange state of one resource type with one node.
type TypeStatus struct {
	TypeURL string
	// VersionSent, NonceSent and SentAt describe the last response sent.
	VersionSent string
	NonceSent   string
	SentAt      time.Time
	// VersionAcked is the last version the proxy accepted (or resumed with
	// after reconnecting).
	VersionAcked string
	AckedAt      time.Time
	// LastNack is the most recent rejection, kept after later acceptances
	// for history; compare its version with VersionAcked.
	LastNack *Nack
}

// Nack is a rejected response.
type Nack struct {
	Version string
	Nonce   string
	// Message is the proxy's error_detail.message, which names the
	// resource and field it could not accept.
	Message string
	At      time.Time
	// Resources are the names carried by the rejected response.
	Resources []string
	// Changed are those of Resources the proxy did not already run: new,
	// or with other content than in the version it last accepted (a
	// delta response carries only such resources). The proxy rejects a
	// response whole, so the rejected resource is among them; the others
	// were accepted before. Resource names are the IR's hierarchical
	// names, so xds/translator.OriginOf maps each to its object.
	Changed []string
}

// Status returns the ACK/NACK table, one entry per connected node and per
// recently disconnected one (WithMaxDisconnectedNodes), sorted by node ID. It is a copy: callers may keep and modify it. Safe from any
// goroutine; never blocks for long.
func (s *Server) Status() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeStatus, 0, len(s.nodes))
	for _, rec := range s.nodes {
		ns := NodeStatus{
			ID:             rec.id,
			Cluster:        rec.cluster,
			Connected:      len(rec.streams) > 0,
			ConnectedSince: rec.connectedSince,
			DisconnectedAt: rec.disconnectedAt,
			Streams:        len(rec.streams),
			Delta:          rec.delta,
		}
		for k := range rec.types {
			ts := rec.types[k]
			if ts.TypeURL == "" {
				continue
			}
			if ts.LastNack != nil {
				n := *ts.LastNack
				n.Resources = append([]string(nil), n.Resources...)
				n.Changed = append([]string(nil), n.Changed...)
				ts.LastNack = &n
			}
			ns.Types = append(ns.Types, ts)
		}
		out = append(out, ns)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// recordStatus copies a stream's view of one type into its node's record.
func (s *Server) recordStatus(st *stream, k kind) {
	rec := s.nodes[st.node]
	if rec == nil {
		return
	}
	rec.delta = st.delta
	t := st.types[k]
	ts := &rec.types[k]
	ts.TypeURL = kindTypeURL[k]
	if t.lastSent != nil {
		ts.VersionSent, ts.NonceSent, ts.SentAt = t.lastSent.version, t.lastSent.nonce, t.lastSent.at
	}
	if t.acked != "" {
		ts.VersionAcked, ts.AckedAt = t.acked, t.ackedAt
	}
	if t.lastNack != nil {
		ts.LastNack = t.lastNack
	}
}

func sortStrings(s []string) { sort.Strings(s) }
