package flow

import (
	"sort"
	"strconv"
	"strings"
)

// Count is how many flows of one kind the store was given since it was
// created, for metrics. Every field comes from a small fixed set, so the
// number of distinct Counts stays bounded whatever a reporter sends.
type Count struct {
	// Kind is KindL7 (from a proxy's access log) or KindL3L4 (a datapath
	// event).
	Kind string
	// Protocol is one of the Protocol constants, or "other".
	Protocol string
	// Verdict is one of the verdict constants, or "OTHER".
	Verdict string
	// Reason is the datapath's reason name (one of at most 256, see
	// datapath/model.Reason) for L3/L4 flows; "" for L7 flows, whose
	// reason text comes from the access log and is not bounded.
	Reason string
	N      uint64
}

// Flow kinds of Count.
const (
	KindL7   = "l7"
	KindL3L4 = "l3l4"
)

// countKey is the bounded key of a flow: see Count. It runs for every
// flow added, so the fixed sets are switches, not maps.
func countKey(f *Flow) Count {
	c := Count{Kind: KindL7, Protocol: countProtocol(f.Protocol), Verdict: countVerdict(f.Verdict)}
	if f.Datapath != nil {
		c.Kind = KindL3L4
		// The agent names the reason from its code; the code is what is
		// bounded, so a name that does not fit is replaced by the code.
		c.Reason = f.Reason
		if len(c.Reason) > 32 {
			c.Reason = "reason(" + strconv.Itoa(int(f.Datapath.Reason)) + ")"
		}
	}
	return c
}

// countProtocol is p if it is a known protocol (in any case), else
// "other". Reporters send the constants, so they are tried first.
func countProtocol(p string) string {
	for range 2 {
		switch p {
		case ProtocolHTTP, ProtocolGRPC, ProtocolKafka, ProtocolTCP, ProtocolUDP, ProtocolICMP, ProtocolICMPv6, ProtocolSCTP:
			return p
		}
		p = strings.ToLower(p)
	}
	return "other"
}

// countVerdict is v if it is a known verdict (in any case), else
// "OTHER".
func countVerdict(v string) string {
	for range 2 {
		switch v {
		case Forwarded, Dropped, Error, Redirected:
			return v
		}
		v = strings.ToUpper(v)
	}
	return "OTHER"
}

// Counts returns how many flows were added since the store was created,
// by kind, protocol, verdict and (L3/L4) reason, sorted. The counts only
// grow; evicting a flow from the ring does not lower them.
func (s *Store) Counts() []Count {
	s.mu.Lock()
	out := make([]Count, 0, len(s.counts))
	for k, n := range s.counts {
		k.N = n
		out = append(out, k)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.Verdict != b.Verdict {
			return a.Verdict < b.Verdict
		}
		return a.Reason < b.Reason
	})
	return out
}
