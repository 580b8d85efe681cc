package http1

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

var requestCases = []struct {
	name    string
	in      string
	err     error
	framing Framing
	length  int64
	close   bool
	host    string
	path    string
}{
	{name: "get", in: "GET /a?b=1 HTTP/1.1\r\nHost: Example.com\r\nX-A: 1\r\n\r\n", host: "Example.com", path: "/a?b=1"},
	{name: "content-length", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", framing: Length, length: 5, host: "h", path: "/"},
	{name: "zero length", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", host: "h", path: "/"},
	{name: "repeated equal length", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", framing: Length, length: 5, host: "h", path: "/"},
	{name: "chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", framing: Chunked, host: "h", path: "/"},
	{name: "close", in: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n", close: true, host: "h", path: "/"},
	{name: "http10 closes", in: "GET / HTTP/1.0\r\n\r\n", close: true, path: "/"},
	{name: "absolute form", in: "GET http://a.example:8080/x HTTP/1.1\r\nHost: ignored\r\n\r\n", host: "a.example:8080", path: "/x"},
	{name: "incomplete", in: "GET / HTTP/1.1\r\nHost: h\r\n", err: ErrIncomplete},
	{name: "both lengths", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrAmbiguousLength},
	{name: "te then cl", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", err: ErrAmbiguousLength},
	{name: "gzip te", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: ErrBadTransferEnc},
	{name: "double te", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrBadTransferEnc},
	{name: "differing lengths", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", err: ErrBadContentLen},
	{name: "signed length", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", err: ErrBadContentLen},
	{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : h\r\n\r\n", err: ErrBadHeader},
	{name: "obs fold", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", err: ErrBadHeader},
	{name: "bare lf", in: "GET / HTTP/1.1\nHost: h\r\n\r\n", err: ErrBadRequestLine},
	{name: "nul in value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", err: ErrBadHeader},
	{name: "missing host", in: "GET / HTTP/1.1\r\nX: y\r\n\r\n", err: ErrBadHost},
	{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", err: ErrBadHost},
	{name: "http2 version", in: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", err: ErrBadVersion},
	{name: "fragment", in: "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrBadTarget},
	{name: "asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrBadTarget},
	{name: "bad method", in: "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrBadRequestLine},

	// Line ends: a bare LF or CR is refused as soon as it arrives, not
	// waited on for a CRLFCRLF that never comes.
	{name: "lf-only head", in: "GET / HTTP/1.1\nHost: h\n\n", err: ErrBadLineEnd},
	{name: "lf-only partial head", in: "GET / HTTP/1.1\nHo", err: ErrBadLineEnd},
	{name: "lf ending the head", in: "GET / HTTP/1.1\r\nHost: h\n\n", err: ErrBadLineEnd},
	{name: "bare cr partial head", in: "GET / HTTP/1.1\rHost: h", err: ErrBadLineEnd},
	{name: "cr last byte", in: "GET / HTTP/1.1\r\nHost: h\r\n\r", err: ErrIncomplete},
	{name: "lf after cr pair", in: "GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", err: ErrBadLineEnd},

	// Host (RFC 9112 §3.2, RFC 3986 §3.2.2).
	{name: "host with space", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", err: ErrBadHost},
	{name: "host with control byte", in: "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", err: ErrBadHeader},
	{name: "host unclosed bracket", in: "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", err: ErrBadHost},
	{name: "host bracket not v6", in: "GET / HTTP/1.1\r\nHost: [a.b]\r\n\r\n", err: ErrBadHost},
	{name: "host junk after bracket", in: "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", err: ErrBadHost},
	{name: "host port not a number", in: "GET / HTTP/1.1\r\nHost: a:notaport\r\n\r\n", err: ErrBadHost},
	{name: "host port too large", in: "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", err: ErrBadHost},
	{name: "host two ports", in: "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", err: ErrBadHost},
	{name: "host userinfo", in: "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", err: ErrBadHost},
	{name: "host slash", in: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", err: ErrBadHost},
	{name: "host bad percent", in: "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", err: ErrBadHost},
	{name: "host comma list", in: "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", err: ErrBadHost},
	{name: "host empty", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", err: ErrBadHost},
	{name: "host v6 port", in: "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", host: "[2001:db8::1]:8080", path: "/"},
	{name: "host empty port", in: "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", err: ErrBadHost},
	{name: "host percent and sub-delims", in: "GET / HTTP/1.1\r\nHost: a%41b!$&'()*+;=_~-.c\r\n\r\n", host: "a%41b!$&'()*+;=_~-.c", path: "/"},
	{name: "absolute form without host", in: "GET http://a.example/x HTTP/1.1\r\n\r\n", err: ErrBadHost},
	{name: "absolute form two hosts", in: "GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n", err: ErrBadHost},
	{name: "absolute form invalid host field", in: "GET http://a.example/x HTTP/1.1\r\nHost: a b\r\n\r\n", err: ErrBadHost},
	{name: "absolute form bad authority", in: "GET http://[::1/x HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrBadTarget},
	{name: "absolute form bad port", in: "GET http://a:x/x HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrBadTarget},
	{name: "http10 without host", in: "GET / HTTP/1.0\r\nX: 1\r\n\r\n", close: true, path: "/"},
	{name: "http10 two hosts", in: "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", err: ErrBadHost},
}

func TestParseRequest(t *testing.T) {
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := ParseRequest([]byte(tc.in), &r)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if r.Framing != tc.framing || r.ContentLength != tc.length || r.Close != tc.close {
				t.Errorf("framing %v/%d/close=%v, want %v/%d/%v", r.Framing, r.ContentLength, r.Close, tc.framing, tc.length, tc.close)
			}
			if string(r.Host) != tc.host || string(r.Path) != tc.path {
				t.Errorf("host %q path %q, want %q %q", r.Host, r.Path, tc.host, tc.path)
			}
			for _, f := range r.Headers {
				if !bytes.Equal(f.Name, bytes.ToLower(f.Name)) {
					t.Errorf("header name %q not lower-cased", f.Name)
				}
			}
		})
	}
}

// TestAbsoluteFormHost checks that the target's authority replaces a
// disagreeing Host field everywhere (RFC 9112 §3.2.2).
func TestAbsoluteFormHost(t *testing.T) {
	var r Request
	if err := ParseRequest([]byte("GET http://a.example:8080/x HTTP/1.1\r\nX: 1\r\nHost: b.example\r\n\r\n"), &r); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Headers.Get("host"); string(r.Host) != "a.example:8080" || string(v) != "a.example:8080" || r.Headers.Count("host") != 1 {
		t.Fatalf("host %q, host field %q (%d fields)", r.Host, v, r.Headers.Count("host"))
	}
}

// TestConfiguredLimits checks Limits: max_headers_count 5 admits five
// fields and refuses the sixth; max_request_headers_kb bounds the head as
// received, incomplete or not.
func TestConfiguredLimits(t *testing.T) {
	head := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString("GET / HTTP/1.1\r\nHost: h\r\n")
		for i := 1; i < n; i++ {
			fmt.Fprintf(&b, "X-%d: v\r\n", i)
		}
		b.WriteString("\r\n")
		return b.Bytes()
	}
	var r Request
	five := Limits{Headers: 5}
	if err := ParseRequestLimits(head(5), &r, five); err != nil || len(r.Headers) != 5 {
		t.Fatalf("5 fields: %v (%d)", err, len(r.Headers))
	}
	if err := ParseRequestLimits(head(6), &r, five); !errors.Is(err, ErrTooManyHeaders) {
		t.Fatalf("6 fields: err = %v, want ErrTooManyHeaders", err)
	}
	// More than the default count when configured so.
	if err := ParseRequestLimits(head(150), &r, Limits{Headers: 150}); err != nil || len(r.Headers) != 150 {
		t.Fatalf("150 fields: %v (%d)", err, len(r.Headers))
	}
	if err := ParseRequest(head(150), &r); !errors.Is(err, ErrTooManyHeaders) {
		t.Fatalf("150 fields by default: err = %v", err)
	}
	h := head(3)
	small := Limits{HeadBytes: len(h)}
	if err := ParseRequestLimits(h, &r, small); err != nil {
		t.Fatalf("head of exactly the limit: %v", err)
	}
	small.HeadBytes--
	if err := ParseRequestLimits(h, &r, small); !errors.Is(err, ErrHeadTooLarge) {
		t.Fatalf("head one byte over: err = %v", err)
	}
	if err := ParseRequestLimits(h[:len(h)-1], &r, small); !errors.Is(err, ErrHeadTooLarge) {
		t.Fatalf("incomplete head at the limit: err = %v", err)
	}
}

// TestIncrementalScan feeds heads one byte at a time, moving the bytes to a
// new buffer between calls as a connection compacting its buffer does: the
// result must be the one-shot result, and a bare line end must be refused
// at the byte that makes it one.
func TestIncrementalScan(t *testing.T) {
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			var one, inc Request
			want := ParseRequest([]byte(tc.in), &one)
			var got error = ErrIncomplete
			for n := 1; n <= len(tc.in) && errors.Is(got, ErrIncomplete); n++ {
				buf := append(make([]byte, 0, n), tc.in[:n]...)
				got = ParseRequest(buf, &inc)
			}
			if (got == nil) != (want == nil) || errors.Is(got, ErrIncomplete) != errors.Is(want, ErrIncomplete) {
				t.Fatalf("incremental: %v, one-shot: %v", got, want)
			}
			if want == nil && (inc.HeadLen != one.HeadLen || string(inc.Host) != string(one.Host) || len(inc.Headers) != len(one.Headers)) {
				t.Fatalf("incremental parse differs: %d %q %d vs %d %q %d", inc.HeadLen, inc.Host, len(inc.Headers), one.HeadLen, one.Host, len(one.Headers))
			}
		})
	}
	// A trickled LF-only head fails at its first line end.
	var r Request
	in := "GET / HTTP/1.1\nHost: h\n\n"
	for n := 1; n <= len(in); n++ {
		err := ParseRequest([]byte(in[:n]), &r)
		if n < len("GET / HTTP/1.1\n") {
			if !errors.Is(err, ErrIncomplete) {
				t.Fatalf("%d bytes: %v", n, err)
			}
			continue
		}
		if !errors.Is(err, ErrBadLineEnd) {
			t.Fatalf("%d bytes: err = %v, want ErrBadLineEnd", n, err)
		}
		r.Reset()
	}
}

func TestParseRequestLimits(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("GET / HTTP/1.1\r\nHost: h\r\n")
	for i := 0; i < MaxHeaders; i++ {
		b.WriteString("X-A: 1\r\n")
	}
	b.WriteString("\r\n")
	var r Request
	if err := ParseRequest(b.Bytes(), &r); !errors.Is(err, ErrTooManyHeaders) {
		t.Fatalf("err = %v, want ErrTooManyHeaders", err)
	}
	big := append([]byte("GET / HTTP/1.1\r\nHost: h\r\nX: "), bytes.Repeat([]byte("a"), MaxHeadBytes)...)
	if err := ParseRequest(big, &r); !errors.Is(err, ErrHeadTooLarge) {
		t.Fatalf("err = %v, want ErrHeadTooLarge", err)
	}
}

func TestParseResponse(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		head    bool
		err     error
		status  int
		framing Framing
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, framing: Length},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", status: 200, framing: Chunked},
		{name: "until close", in: "HTTP/1.1 200 OK\r\n\r\n", status: 200, framing: UntilClose},
		{name: "no reason", in: "HTTP/1.1 204\r\n\r\n", status: 204, framing: NoBody},
		{name: "head", in: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", head: true, status: 200, framing: NoBody},
		{name: "not modified", in: "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", status: 304, framing: NoBody},
		{name: "both", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrAmbiguousLength},
		{name: "bad code", in: "HTTP/1.1 2x0 OK\r\n\r\n", err: ErrBadStatusLine},
		{name: "bad version", in: "HTTP/2.0 200 OK\r\n\r\n", err: ErrBadVersion},
		{name: "short", in: "HTTP/1.1 200 OK\r\n", err: ErrIncomplete},
		{name: "lf-only", in: "HTTP/1.1 200 OK\nContent-Length: 0\n\n", err: ErrBadLineEnd},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			err := ParseResponse([]byte(tc.in), tc.head, &r)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (r.Status != tc.status || r.Framing != tc.framing) {
				t.Errorf("status %d framing %v, want %d %v", r.Status, r.Framing, tc.status, tc.framing)
			}
		})
	}
}

// decodeAll runs the decoder over in, fed in pieces of step bytes.
func decodeAll(in []byte, step int) ([]byte, bool, error) {
	var d ChunkedDecoder
	var out []byte
	for off := 0; off < len(in) && !d.Done(); {
		end := off + step
		if end > len(in) {
			end = len(in)
		}
		p := in[off:end]
		for len(p) > 0 && !d.Done() {
			n, data, err := d.Decode(p)
			if err != nil {
				return out, false, err
			}
			out = append(out, data...)
			p = p[n:]
			off += n
			if n == 0 {
				break
			}
		}
	}
	return out, d.Done(), nil
}

func TestChunked(t *testing.T) {
	cases := []struct {
		name string
		in   string
		out  string
		done bool
		err  error
	}{
		{name: "simple", in: "5\r\nhello\r\n0\r\n\r\n", out: "hello", done: true},
		{name: "two chunks ext", in: "3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", out: "abc0123456789", done: true},
		{name: "trailers", in: "1\r\na\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", out: "a", done: true},
		{name: "partial", in: "5\r\nhel", out: "hel"},
		{name: "bad hex", in: "g\r\n", err: ErrBadChunk},
		{name: "missing crlf", in: "1\r\nab\r\n", err: ErrBadChunk},
		{name: "lf only", in: "1\na\r\n", err: ErrBadChunk},
		{name: "huge", in: "1000000000000000\r\n", err: ErrChunkTooLarge},
		{name: "empty size", in: "\r\n", err: ErrBadChunk},
	}
	for _, tc := range cases {
		for _, step := range []int{1, 3, 1 << 20} {
			out, done, err := decodeAll([]byte(tc.in), step)
			if !errors.Is(err, tc.err) {
				t.Fatalf("%s/%d: err = %v, want %v", tc.name, step, err, tc.err)
			}
			if err == nil && (string(out) != tc.out || done != tc.done) {
				t.Errorf("%s/%d: out %q done %v, want %q %v", tc.name, step, out, done, tc.out, tc.done)
			}
		}
	}
}

func TestAppendChunkRoundTrip(t *testing.T) {
	var enc []byte
	enc = AppendChunk(enc, []byte("hello "))
	enc = AppendChunk(enc, bytes.Repeat([]byte("x"), 300))
	enc = append(enc, LastChunk...)
	out, done, err := decodeAll(enc, 7)
	if err != nil || !done || string(out) != "hello "+string(bytes.Repeat([]byte("x"), 300)) {
		t.Fatalf("round trip: %q %v %v", out, done, err)
	}
}

func TestParseRequestNoAlloc(t *testing.T) {
	in := []byte("GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n")
	var r Request
	allocs := testing.AllocsPerRun(100, func() {
		if err := ParseRequest(in, &r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseRequest allocates %v times per run", allocs)
	}
}

func BenchmarkParseRequest(b *testing.B) {
	in := []byte("GET /api/v1/items?id=42 HTTP/1.1\r\nHost: bench.example.com\r\nUser-Agent: wrk/4.2\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nX-Request-Id: 3f1c0e1a-8f1b-4e0b-9a3c-2b1d4c5e6f70\r\n\r\n")
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if err := ParseRequest(in, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	in := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 64\r\nConnection: keep-alive\r\n\r\n")
	var r Response
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseResponse(in, false, &r); err != nil {
			b.Fatal(err)
		}
	}
}
