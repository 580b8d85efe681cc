package server

import "sync/atomic"

// Counters are the server's cumulative exchange counts per resource type,
// summed over every stream since New. Metrics export reads them; they only
// ever grow.
type Counters struct {
	// Types has one entry per resource type the server serves, in
	// delivery order (clusters, endpoints, listeners, routes, secrets,
	// extension configurations).
	Types []TypeCounters
	// Streams counts streams opened since New; OpenStreams is how many
	// are open now.
	Streams     uint64
	OpenStreams int
	// Refused counts gRPC streams refused because WithMaxStreams were
	// open (over every service of the socket, access logs included), or
	// WithMaxStreamsPerClient of the stream's client.
	Refused uint64
}

// TypeCounters counts the exchanges of one resource type.
type TypeCounters struct {
	TypeURL string
	// Short is Envoy's short name of the type: CDS, EDS, LDS, RDS, SDS
	// or ECDS.
	Short string
	// Pushes counts responses sent; Acks and Nacks the proxies' answers
	// that accepted or rejected the response they answer (answers to a
	// stale or unknown nonce count as neither).
	Pushes, Acks, Nacks uint64
	// Version is the version of this type in the snapshot being served
	// (state of the world), "" before the first Update.
	Version string
}

// exchangeCounts is the counting side of Counters: atomics, so the
// callbacks count without widening the table lock's work.
type exchangeCounts struct {
	pushes, acks, nacks [numKinds]atomic.Uint64
	streams             atomic.Uint64
	refused             atomic.Uint64
}

// Counters returns the exchange counters and the served versions. Safe
// from any goroutine; never blocks for long.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	open := len(s.streams)
	var versions [numKinds]string
	if s.publishedOnce {
		for k := range versions {
			if set := s.published[k]; set != nil {
				versions[k] = set.version
			}
		}
	}
	s.mu.Unlock()
	out := Counters{Streams: s.counts.streams.Load(), OpenStreams: open, Refused: s.counts.refused.Load()}
	for k := kind(0); k < numKinds; k++ {
		out.Types = append(out.Types, TypeCounters{
			TypeURL: kindTypeURL[k], Short: k.short(),
			Pushes: s.counts.pushes[k].Load(), Acks: s.counts.acks[k].Load(), Nacks: s.counts.nacks[k].Load(),
			Version: versions[k],
		})
	}
	return out
}
