package hcm

import (
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// Request outcome classes RequestStats counts by. The label sets are
// fixed, so the number of series stays bounded whatever clients send
// (Envoy's downstream_rq_<class>xx counters, split by protocol and by the
// policy verdict nodemesh adds).
const (
	numReqProtocols = 2 // http, grpc
	numCodeClasses  = 6 // none (no response), 1xx … 5xx
	numVerdicts     = 3 // forwarded, dropped, error
)

var (
	reqProtocolNames = [numReqProtocols]string{"http", "grpc"}
	codeClassNames   = [numCodeClasses]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}
	verdictNames     = [numVerdicts]string{"forwarded", "dropped", "error"}
)

// LatencyBuckets are the upper bounds, in seconds, of the request
// duration histogram (Prometheus' default buckets, with 1 ms added for
// loopback and in-node hops).
var LatencyBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// RequestStats counts the HTTP requests of every connection manager of
// the proxy. Counting is a few atomic adds per request; Snapshot reads
// concurrently.
type RequestStats struct {
	counts  [numReqProtocols][numCodeClasses][numVerdicts]atomic.Uint64
	buckets [numReqProtocols][]atomic.Uint64 // cumulative is computed on read
	sumNs   [numReqProtocols]atomic.Uint64
	total   [numReqProtocols]atomic.Uint64
}

func newRequestStats() *RequestStats {
	s := &RequestStats{}
	for p := range s.buckets {
		s.buckets[p] = make([]atomic.Uint64, len(LatencyBuckets)+1)
	}
	return s
}

// RequestCount is one (protocol, code class, verdict) counter.
type RequestCount struct {
	Protocol, CodeClass, Verdict string
	N                            uint64
}

// RequestLatency is the duration histogram of one protocol: Buckets[i]
// counts requests that took at most LatencyBuckets[i] (cumulative, as
// Prometheus wants them).
type RequestLatency struct {
	Protocol string
	Buckets  []uint64
	Count    uint64
	Sum      time.Duration
}

// Snapshot returns every non-zero request counter and the latency
// histograms.
func (s *RequestStats) Snapshot() ([]RequestCount, []RequestLatency) {
	var counts []RequestCount
	var lat []RequestLatency
	for p := range s.counts {
		for c := range s.counts[p] {
			for v := range s.counts[p][c] {
				if n := s.counts[p][c][v].Load(); n > 0 {
					counts = append(counts, RequestCount{reqProtocolNames[p], codeClassNames[c], verdictNames[v], n})
				}
			}
		}
		l := RequestLatency{Protocol: reqProtocolNames[p], Buckets: make([]uint64, len(LatencyBuckets))}
		var cum uint64
		for i := range LatencyBuckets {
			cum += s.buckets[p][i].Load()
			l.Buckets[i] = cum
		}
		l.Count, l.Sum = s.total[p].Load(), time.Duration(s.sumNs[p].Load())
		lat = append(lat, l)
	}
	return counts, lat
}

// record counts one finished request.
func (s *RequestStats) record(grpc bool, code int, verdict string, d time.Duration) {
	p := 0
	if grpc {
		p = 1
	}
	c := 0
	if code >= 100 && code < 600 {
		c = code / 100
	}
	v := 0
	switch verdict {
	case l7meta.VerdictDropped:
		v = 1
	case l7meta.VerdictError:
		v = 2
	}
	s.counts[p][c][v].Add(1)
	sec := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && sec > LatencyBuckets[i] {
		i++
	}
	s.buckets[p][i].Add(1)
	if d > 0 {
		s.sumNs[p].Add(uint64(d))
	}
	s.total[p].Add(1)
}

// finish counts the request the stream just served; s.end records when.
func (s *stream) finish() {
	verdict := s.verdict
	if verdict == "" {
		verdict = l7meta.VerdictForwarded
		if s.flags != 0 {
			verdict = l7meta.VerdictError
		}
	}
	s.end = time.Now()
	s.h.rt.Requests.record(s.grpc, s.respCode, verdict, s.end.Sub(s.start))
}
