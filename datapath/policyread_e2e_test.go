package datapath_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// A tool reads the policy (ReadPolicy) while the agent publishes new
// ones. Between the read's lookup of the slot and its open of the table
// the slot named, the agent can publish another table and the kernel
// free the old one. Every read must still return one of the published
// policies in full: never an error, never an empty or partial policy.
func TestReadPolicyWhileThePolicyIsSwapped(t *testing.T) {
	n := newBareNode(t, 1, false)
	n.open()
	// Two policies without a row in common, so that a read mixing them,
	// or missing rows, matches neither.
	a, b := benchPolicy(16, 16, 0), benchPolicy(16, 16, 1)
	n.policy(a)
	wantA, err := datapath.ReadPolicy(n.pinDir)
	if err != nil {
		t.Fatal(err)
	}
	n.policy(b)
	wantB, err := datapath.ReadPolicy(n.pinDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(wantA.Entries) != 16 || len(wantB.Entries) != 16 || cmp.Equal(wantA, wantB) {
		t.Fatalf("read back %+v and %+v, want the two 16-rule policies", wantA, wantB)
	}

	// A second handle on the same pins, as while an upgraded agent starts
	// beside the old one: its Policy() reads the table another handle
	// published, the way ReadPolicy does.
	other, err := datapath.New(n.opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	type reader struct {
		name         string
		read         func() (model.Policy, error)
		reads, fails int
		firstErr     error
	}
	readers := []*reader{
		{name: "ReadPolicy", read: func() (model.Policy, error) { return datapath.ReadPolicy(n.pinDir) }},
		{name: "Policy of another handle", read: other.Policy},
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	swaps := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := a
			if swaps%2 == 1 {
				p = b
			}
			if err := n.dp.SyncPolicy(p); err != nil {
				t.Errorf("publishing policy %d: %v", swaps, err)
				return
			}
			swaps++
		}
	}()
	stopPublishing := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopPublishing()

	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		r := readers[i%len(readers)]
		got, err := r.read()
		r.reads++
		if err != nil {
			if r.fails++; r.firstErr == nil {
				r.firstErr = err
			}
			continue
		}
		if !cmp.Equal(got, wantA) && !cmp.Equal(got, wantB) {
			t.Fatalf("%s returned neither published policy: %s", r.name, cmp.Diff(wantA, got))
		}
	}
	stopPublishing()
	for _, r := range readers {
		if r.fails > 0 {
			t.Errorf("%s: %d of %d reads during %d policy updates failed; the first: %v", r.name, r.fails, r.reads, swaps, r.firstErr)
		}
		if r.reads < 50 {
			t.Errorf("%s: only %d reads: the race was not exercised", r.name, r.reads)
		}
		t.Logf("%s: %d reads during %d policy updates", r.name, r.reads, swaps)
	}
	if swaps < 50 {
		t.Errorf("only %d policy updates: the race was not exercised", swaps)
	}
}
