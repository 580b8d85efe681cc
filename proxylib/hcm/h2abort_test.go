package hcm

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestAbortedStreamGetsNoLocalReply checks a stream a forced close
// aborted between taking an upstream connection and attaching it: the
// caller leaves the reply to the stream timer (code 0), which has no
// expiry to answer with, so the handler aborts (the server resets the
// stream) instead of writing a status 0.
func TestAbortedStreamGetsNoLocalReply(t *testing.T) {
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	rt, _ := oneClusterRuntime(t, be)
	h := NewHandler(rt, &resource.HCM{RouteConfigName: "rc", Codec: resource.CodecAuto, ServerName: "envoy",
		IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute}, false)
	s := newStream(h)
	rec := httptest.NewRecorder()
	s.h2t.begin(rec, httptest.NewRequest("GET", "/", nil), time.Minute, 0)
	defer s.h2t.finish()
	s.h2t.abort()
	if s.h2t.attach(nil) {
		t.Fatal("attach succeeded after the stream was aborted")
	}
	defer func() {
		if r := recover(); r != http.ErrAbortHandler {
			t.Errorf("writeLocalH2(w, 0) of an aborted stream: recovered %v, want http.ErrAbortHandler", r)
		}
		if rec.Code != http.StatusOK || len(rec.Header()) != 0 {
			t.Errorf("a reply was written: status %d, header %v", rec.Code, rec.Header())
		}
	}()
	s.writeLocalH2(rec, 0, nil, nil)
}
