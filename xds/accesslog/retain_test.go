package accesslog

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/flow"
)

// TestStoredFlowKeepsOnlyItsOwn: a flow the store keeps must not keep
// alive the memory of the other flows its stream decoded around it. A
// stream decodes messages of 31 entries with 8 KB of strings each and a
// last small one; only the small ones are kept. Each kept flow may cost
// its own memory and one shared block of strings, not its neighbours'.
func TestStoredFlowKeepsOnlyItsOwn(t *testing.T) {
	big := strings.Repeat("p", 4000)
	var msg []byte
	{
		m := hopMessage(32)
		entries := m.GetHttpLogs().LogEntry
		for _, e := range entries[:31] {
			e.Request.Path, e.Request.Authority = "/"+big, big
		}
		msg = mustMarshal(m)
	}
	const rounds = 64
	var kept []flow.Flow
	w := &wireMessage{}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	kept = make([]flow.Flow, 0, rounds)
	before := heap()
	for range rounds {
		if err := w.Unmarshal(msg); err != nil || len(w.entries) != 32 {
			t.Fatalf("decoding: %v, %d entries", err, len(w.entries))
		}
		kept = append(kept, w.entries[31].f)
	}
	w = nil // the stream is gone; only the kept flows remain
	after := heap()
	per := (int64(after) - int64(before)) / rounds
	if per > 16<<10 {
		t.Errorf("each kept flow keeps %d bytes alive, want at most 16 KiB", per)
	}
	for _, f := range kept {
		if f.HTTP == nil || f.HTTP.Path != "/hop" {
			t.Fatalf("kept flow %+v", f.HTTP)
		}
	}
	runtime.KeepAlive(kept)
}

// TestLargeMessageDeliveredInChunks: the flows of a large message go to
// the sink in calls of at most keptEntries, in order, so the store's
// lock is not held for all of them at once.
func TestLargeMessageDeliveredInChunks(t *testing.T) {
	sink := &batches{Store: flow.NewStore()}
	svc := New(sink, nil)
	w := &wireMessage{}
	if err := w.Unmarshal(mustMarshal(hopMessage(1000))); err != nil || len(w.entries) != 1000 {
		t.Fatalf("decoding: %v, %d entries", err, len(w.entries))
	}
	svc.deliver(nil, w.entries, "proxy", "policy/ingress/http", "ingress")
	if want := []int{256, 256, 256, 232}; !slices.Equal(sink.sizes, want) {
		t.Errorf("sink calls of %v flows, want %v", sink.sizes, want)
	}
	if st := svc.Stats(); st.Flows != 1000 {
		t.Errorf("stats %+v, want 1000 flows", st)
	}
}
