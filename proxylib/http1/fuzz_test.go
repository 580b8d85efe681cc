package http1

import (
	"bytes"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	for _, tc := range requestCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var r Request
		buf := append([]byte(nil), in...)
		if err := ParseRequest(buf, &r); err != nil {
			return
		}
		if r.HeadLen > len(buf) || r.HeadLen > MaxHeadBytes {
			t.Fatalf("head length %d out of range", r.HeadLen)
		}
		if len(r.Headers) > MaxHeaders {
			t.Fatalf("%d headers", len(r.Headers))
		}
		if r.Framing == Chunked && r.Headers.Has("content-length") {
			t.Fatal("accepted chunked with content-length")
		}
		if r.ContentLength < 0 {
			t.Fatal("negative content-length")
		}
		for _, h := range r.Headers {
			if !bytes.Equal(h.Name, bytes.ToLower(h.Name)) || bytes.ContainsAny(h.Value, "\r\n\x00") {
				t.Fatalf("bad field %q: %q", h.Name, h.Value)
			}
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.0 304 Not Modified\r\nConnection: keep-alive\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		var r Response
		if err := ParseResponse(append([]byte(nil), in...), head, &r); err != nil {
			return
		}
		if r.Status < 100 || r.Status > 999 || r.HeadLen > len(in) {
			t.Fatalf("status %d headLen %d", r.Status, r.HeadLen)
		}
		if head && r.Framing != NoBody {
			t.Fatal("HEAD response with a body")
		}
	})
}

func FuzzChunkedDecoder(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), 3)
	f.Add([]byte("3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n"), 1)
	f.Add([]byte("ffffffffffffffff\r\n"), 100)
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		if step <= 0 || step > 1<<16 {
			step = 1 << 16
		}
		out, done, err := decodeAll(in, step)
		if len(out) > len(in) {
			t.Fatalf("decoded %d bytes from %d", len(out), len(in))
		}
		if err != nil || !done {
			return
		}
		// A complete body re-encodes to something that decodes identically.
		enc := append(AppendChunk(nil, out), LastChunk...)
		again, done2, err := decodeAll(enc, 5)
		if err != nil || !done2 || !bytes.Equal(again, out) {
			t.Fatalf("re-encoded body differs: %q vs %q (%v)", again, out, err)
		}
	})
}
