package http1

import (
	"bytes"
	"errors"
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
		if (len(r.Host) > 0 || r.Minor == 1) && !ValidHost(r.Host) || r.Headers.Count("host") > 1 {
			t.Fatalf("accepted host %q (%d host fields)", r.Host, r.Headers.Count("host"))
		}
		if h, ok := r.Headers.Get("host"); ok && string(h) != string(r.Host) {
			t.Fatalf("host field %q disagrees with host %q", h, r.Host)
		}
		for _, h := range r.Headers {
			if !bytes.Equal(h.Name, bytes.ToLower(h.Name)) || bytes.ContainsAny(h.Value, "\r\n\x00") {
				t.Fatalf("bad field %q: %q", h.Name, h.Value)
			}
		}
	})
}

// FuzzParseRequestIncremental feeds a head in two pieces, the second
// appended to a copy of the first as a connection's buffer grows, under
// small limits: the result must agree with parsing the whole at once.
func FuzzParseRequestIncremental(f *testing.F) {
	for _, tc := range requestCases {
		f.Add([]byte(tc.in), len(tc.in)/2, 8, 256)
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"), 17, 2, 64)
	f.Fuzz(func(t *testing.T, in []byte, split, headers, headBytes int) {
		if split < 0 || split > len(in) {
			split = len(in) / 2
		}
		lim := Limits{Headers: headers % 200, HeadBytes: headBytes % (1 << 16)}
		var one, inc Request
		want := ParseRequestLimits(append([]byte(nil), in...), &one, lim)
		got := ParseRequestLimits(append([]byte(nil), in[:split]...), &inc, lim)
		if errors.Is(got, ErrIncomplete) {
			buf := append(make([]byte, 0, len(in)), in...)
			got = ParseRequestLimits(buf, &inc, lim)
		}
		// A prefix is judged on its own bytes: a head it completes is the
		// whole's head, and a bad byte in it is a bad byte in the whole.
		if (got == nil) != (want == nil) {
			t.Fatalf("incremental %v vs one-shot %v", got, want)
		}
		if got == nil && (inc.HeadLen != one.HeadLen || len(inc.Headers) != len(one.Headers)) {
			t.Fatalf("incremental %d/%d vs one-shot %d/%d", inc.HeadLen, len(inc.Headers), one.HeadLen, len(one.Headers))
		}
		if want == nil && (len(one.Headers) > lim.headers() || one.HeadLen > lim.headBytes()) {
			t.Fatalf("limits %+v exceeded: %d fields, %d bytes", lim, len(one.Headers), one.HeadLen)
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
