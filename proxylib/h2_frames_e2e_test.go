package proxylib_test

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// A response whose length the upstream declared ends in one DATA frame
// carrying its last bytes and END_STREAM, not in a further empty DATA
// frame: the proxy does not flush the read that ends the body, so the
// server sends it with the end of the stream (and spares the flush's
// hand-off to its own goroutine). Every earlier read of a body is still
// flushed as it arrives.
func TestH2LengthBodyEndsInOneDataFrame(t *testing.T) {
	backendAddr := rawBackend(t) // 200, content-length 64
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "c"))),
		edsCluster(t, "c", false, nil), cla("c", backendAddr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "app.example")

	h := dialH2(t, addr, nil)
	_ = h.c.SetDeadline(time.Now().Add(30 * time.Second))
	for i := range 20 {
		id := uint32(2*i + 1)
		h.headers(id, true, reqFields(fmt.Sprintf("/r%d", i))...)
		var frames []string
		body := 0
		for done := false; !done; {
			f, err := h.fr.ReadFrame()
			if err != nil {
				t.Fatalf("stream %d: reading: %v (frames so far %v)", id, err, frames)
			}
			if f.Header().StreamID != id {
				continue
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				if s := f.PseudoValue("status"); s != "200" {
					t.Fatalf("stream %d: status %q", id, s)
				}
				// Each field once: a response sent whole must not gain a
				// second content-length (clients reject the stream).
				seen := map[string]int{}
				for _, hf := range f.RegularFields() {
					if seen[hf.Name]++; seen[hf.Name] > 1 {
						t.Fatalf("stream %d: field %q sent twice: %v", id, hf.Name, f.RegularFields())
					}
				}
				frames = append(frames, "HEADERS")
				done = f.StreamEnded()
			case *http2.DataFrame:
				body += len(f.Data())
				name := fmt.Sprintf("DATA(%d)", len(f.Data()))
				if f.StreamEnded() {
					name += "+END_STREAM"
				}
				frames = append(frames, name)
				done = f.StreamEnded()
			default:
				t.Fatalf("stream %d: unexpected %v", id, f)
			}
		}
		if body != 64 {
			t.Fatalf("stream %d: %d body bytes, want 64 (frames %v)", id, body, frames)
		}
		if len(frames) != 2 || frames[1] != "DATA(64)+END_STREAM" {
			t.Fatalf("stream %d: frames %v, want HEADERS and one DATA(64)+END_STREAM", id, frames)
		}
	}
}
