package perf

import (
	"runtime/metrics"
	"syscall"
	"testing"
	"time"
)

// usage is what the process has used up to one point: CPU time (garbage
// collection included), minor page faults and completed GC cycles. The
// last two count work rather than time, so they move little on a shared
// machine: a fault is a fresh page the heap touched for the first time
// (or again, after the runtime returned it), and a cycle is one full
// mark of the live heap.
type usage struct {
	cpu    time.Duration
	minflt int64
	gc     uint64
}

func readUsage() usage {
	var u usage
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.minflt = ru.Minflt
	}
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		u.gc = s[0].Value.Uint64()
	}
	return u
}

// reportUsage reports, per operation since start, the process's CPU time
// ("cpu-ms/op": on a shared machine it moves far less than wall time), its
// minor page faults ("minflt/op") and the GC cycles completed
// ("gc-cycles/op").
func reportUsage(b *testing.B, start usage) {
	now := readUsage()
	n := float64(b.N)
	b.ReportMetric(float64(now.cpu-start.cpu)/float64(time.Millisecond)/n, "cpu-ms/op")
	b.ReportMetric(float64(now.minflt-start.minflt)/n, "minflt/op")
	b.ReportMetric(float64(now.gc-start.gc)/n, "gc-cycles/op")
}
