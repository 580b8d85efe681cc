package hcm

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReplayViews(t *testing.T) {
	var r replay
	var done []byte
	r.reset(iotest.OneByteReader(strings.NewReader("hello world")), 64)
	r.onDone = func(b []byte) { done = append([]byte(nil), b...) }
	if !r.untouched() {
		t.Fatal("a fresh body is touched")
	}
	v1 := r.view()
	buf := make([]byte, 4)
	n, _ := v1.Read(buf)
	if string(buf[:n]) != "h" || r.untouched() {
		t.Fatalf("first read %q", buf[:n])
	}
	// A retry before the body ended: the recorded prefix, then the rest
	// of the source; the earlier attempt's view is over.
	v2 := r.view()
	if _, err := v1.Read(buf); !errors.Is(err, errAttemptOver) {
		t.Fatalf("stale view read: %v", err)
	}
	got, err := io.ReadAll(v2)
	if err != nil || string(got) != "hello world" || !r.complete() || string(done) != "hello world" {
		t.Fatalf("second attempt read %q %v, complete %v, onDone %q", got, err, r.complete(), done)
	}
	// A third attempt replays it whole from the record.
	got, err = io.ReadAll(r.view())
	if err != nil || string(got) != "hello world" {
		t.Fatalf("replay %q %v", got, err)
	}
	r.release()
	if _, err := v2.Read(buf); !errors.Is(err, errAttemptOver) {
		t.Fatalf("read after release: %v", err)
	}
}

func TestReplayOverLimit(t *testing.T) {
	var r replay
	over := 0
	done := false
	r.reset(strings.NewReader(strings.Repeat("x", 100)), 10)
	r.onOver = func() { over++ }
	r.onDone = func([]byte) { done = true }
	if !r.replayable() {
		t.Fatal("an unread body is not replayable")
	}
	got, err := io.ReadAll(r.view())
	if err != nil || len(got) != 100 {
		t.Fatalf("the first attempt must get the whole body: %d %v", len(got), err)
	}
	if r.replayable() || r.view() != nil || over != 1 || done {
		t.Fatalf("over the limit: replayable %v, overflows %d, done %v", r.replayable(), over, done)
	}
}

func TestReplaySourceError(t *testing.T) {
	var r replay
	boom := errors.New("client went away")
	r.reset(iotest.ErrReader(boom), 10)
	if _, err := io.ReadAll(r.view()); !errors.Is(err, boom) || !errors.Is(r.failed(), boom) {
		t.Fatalf("source error %v, failed %v", err, r.failed())
	}
	if _, err := r.view().Read(make([]byte, 1)); !errors.Is(err, boom) {
		t.Fatalf("a later attempt reads %v, want the source's error", err)
	}
}
