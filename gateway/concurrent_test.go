package gateway

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTranslateConcurrent runs translations of one snapshot in parallel
// (run it with -race): Translate shares no mutable state, and results do
// not alias each other.
func TestTranslateConcurrent(t *testing.T) {
	snap, opts := benchSnapshot(50)
	want := Translate(snap, opts)
	results := make([]*Result, 4)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = Translate(snap, opts)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if diff := cmp.Diff(want, r); diff != "" {
			t.Fatalf("result %d differs (-want +got):\n%s", i, diff)
		}
	}
	// Mutating one result must not show through another.
	vhs := results[0].Config.Listeners[0].Chains[0].Routes.VirtualHosts
	vhs[len(vhs)-1].Routes[0].Name = "changed"
	vhs[len(vhs)-1].Routes[0].Match.Headers = nil
	results[0].Gateways[0].Status.Listeners[0].SupportedKinds[0].Kind = "Changed"
	if diff := cmp.Diff(want, results[1]); diff != "" {
		t.Fatalf("results share memory (-want +got):\n%s", diff)
	}
}
