package flow

import (
	"testing"
)

// BenchmarkStore records the flows of one access-log message of the
// policy hop (64 HTTP flows from one client to one server) with a
// resolver, while a follower waits: "Add" one flow at a time, as the
// access log did, "AddAll" the message at once. ns/entry is the time per
// flow.
func BenchmarkStore(b *testing.B) {
	const n = 64
	batch := hopBatch(0, n)
	b.Run("Add", func(b *testing.B) {
		s := NewStore()
		s.SetResolver(&agentLike{})
		b.ReportAllocs()
		for b.Loop() {
			_ = s.Changed()
			for _, f := range batch {
				s.Add(f)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
	})
	b.Run("AddAll", func(b *testing.B) {
		s := NewStore()
		s.SetResolver(&agentLike{})
		b.ReportAllocs()
		for b.Loop() {
			_ = s.Changed()
			s.AddAll(batch)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
	})
}
