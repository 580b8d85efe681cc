package hcm

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// panicDown is a downstream whose failure reply panics the way a stream
// a forced close reset does (writeLocalH2 with no reply to give).
type panicDown struct{ downstream }

func (panicDown) fail(upstreamErr) bool { panic(http.ErrAbortHandler) }

// TestLastTryEndsCountsWhenTheReplyPanics: the attempt that ends a
// request's tries gives back its request and balancing counts even when
// the reply panics with http.ErrAbortHandler, as an HTTP/2 stream's
// handler does after a forced close; otherwise each such stream would
// keep one of the cluster's max_requests for good.
func TestLastTryEndsCountsWhenTheReplyPanics(t *testing.T) {
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	_, cluster := oneClusterRuntime(t, be)
	pool := cluster.Hosts[0].Pool
	if !pool.Admit() {
		t.Fatal("request not admitted")
	}
	pool.Begin()
	released := false
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Fatalf("recovered %v, want http.ErrAbortHandler", r)
			}
		}()
		var s stream
		s.lastTry(panicDown{}, pool, true, func() { released = true }, nil, nil, time.Time{}, upTimeout)
	}()
	if got := pool.Breaker().Stats().UpstreamRqActive; got != 0 {
		t.Errorf("upstream_rq_active %d after the reply panicked, want 0", got)
	}
	if got := pool.Active(); got != 0 {
		t.Errorf("%d requests active for balancing after the reply panicked, want 0", got)
	}
	if !released {
		t.Error("the attempt's release was not called")
	}
}
