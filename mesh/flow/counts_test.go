package flow

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCountsAreBounded: Counts tallies flows by kind, protocol, verdict
// and datapath reason; whatever verdicts and protocols a reporter invents
// fall into one OTHER/other bucket, and an L7 reason never becomes a key,
// so the number of metric series stays bounded. Evicted flows stay
// counted.
func TestCountsAreBounded(t *testing.T) {
	s := NewStore(WithCapacity(4))
	for i := range 3 {
		s.Add(Flow{Protocol: ProtocolHTTP, Verdict: Forwarded, Reason: fmt.Sprint("r", i)})
	}
	s.Add(Flow{Protocol: "HTTP", Verdict: "dropped"})
	for i := range 100 {
		s.Add(Flow{Protocol: fmt.Sprint("proto", i), Verdict: fmt.Sprint("VERDICT", i), Reason: fmt.Sprint("why", i)})
	}
	s.Add(Flow{Protocol: ProtocolTCP, Verdict: Dropped, Reason: "policy-denied", Datapath: &Datapath{Event: EventDrop, Reason: 2}})
	s.Add(Flow{Protocol: ProtocolTCP, Verdict: Dropped, Reason: "policy-denied", Datapath: &Datapath{Event: EventDrop, Reason: 2}})
	s.Add(Flow{Protocol: ProtocolTCP, Verdict: Redirected, Reason: "redirected", Datapath: &Datapath{Event: EventRedirect, Reason: 1}})
	long := Flow{Protocol: ProtocolUDP, Verdict: Dropped, Datapath: &Datapath{Event: EventDrop, Reason: 200}}
	for i := range 40 {
		long.Reason = fmt.Sprintf("%040d", i)
		s.Add(long)
	}
	want := []Count{
		{Kind: KindL3L4, Protocol: ProtocolTCP, Verdict: Dropped, Reason: "policy-denied", N: 2},
		{Kind: KindL3L4, Protocol: ProtocolTCP, Verdict: Redirected, Reason: "redirected", N: 1},
		{Kind: KindL3L4, Protocol: ProtocolUDP, Verdict: Dropped, Reason: "reason(200)", N: 40},
		{Kind: KindL7, Protocol: ProtocolHTTP, Verdict: Dropped, N: 1},
		{Kind: KindL7, Protocol: ProtocolHTTP, Verdict: Forwarded, N: 3},
		{Kind: KindL7, Protocol: "other", Verdict: "OTHER", N: 100},
	}
	if diff := cmp.Diff(want, s.Counts()); diff != "" {
		t.Fatalf("Counts (-want +got):\n%s", diff)
	}
}
