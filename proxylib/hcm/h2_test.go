package hcm

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestH2Check(t *testing.T) {
	req := func(extra ...string) []string {
		return append([]string{":method", "GET", ":scheme", "https", ":authority", "a.example", ":path", "/p?q"}, extra...)
	}
	for _, tc := range []struct {
		name      string
		fields    []string
		endStream bool
		trailers  bool
		want      error
	}{
		{"plain", req(), true, false, nil},
		{"te trailers", req("te", "Trailers"), true, false, nil},
		{"host equal to authority", req("host", "a.example"), true, false, nil},
		{"host instead of authority", []string{":method", "GET", ":scheme", "http", ":path", "/", "host", "[::1]:8080"}, true, false, nil},
		{"options asterisk", []string{":method", "OPTIONS", ":scheme", "http", ":authority", "a", ":path", "*"}, true, false, nil},
		{"connect", []string{":method", "CONNECT", ":authority", "a.example:443"}, false, false, nil},
		{"content-length with body", req("content-length", "3", "content-length", "3"), false, false, nil},
		{"content-length zero ending", req("content-length", "0"), true, false, nil},
		{"obs-text and inner space", req("x-a", "b c\xff"), true, false, nil},
		{"empty value", req("x-a", ""), true, false, nil},
		{"trailers are the server's", []string{":path", "/", "connection", "x"}, true, true, nil},

		{"pseudo after regular", append([]string{"x-a", "b"}, req()...), true, false, errH2PseudoOrder},
		{"repeated path", req(":path", "/x"), true, false, errH2PseudoUnknown},
		{"repeated pseudo", []string{":method", "GET", ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/"}, true, false, errH2PseudoUnknown},
		{"status", append([]string{":status", "200"}, req()...), true, false, errH2PseudoUnknown},
		{"empty name", req("", "x"), true, false, errH2FieldName},
		{"NUL", req("x-a", "a\x00b"), true, false, errH2FieldValue},
		{"lone LF", req("x-a", "a\nb"), true, false, errH2FieldValue},
		{"scheme", []string{":method", "GET", ":scheme", "ftp", ":authority", "a", ":path", "/"}, true, false, errH2Scheme},
		{"no path", []string{":method", "GET", ":scheme", "http", ":authority", "a"}, true, false, errH2Path},
		{"empty path", []string{":method", "GET", ":scheme", "http", ":authority", "a", ":path", ""}, true, false, errH2Path},
		{"two hosts", req("host", "a.example", "host", "a.example"), true, false, errH2HostMismatch},
		{"connect with path", []string{":method", "CONNECT", ":authority", "a:443", ":path", "/"}, false, false, errH2ConnectMalformed},
		{"no method", []string{":scheme", "http", ":authority", "a", ":path", "/"}, true, false, errH2Method},
		{"too many", func() []string {
			f := req()
			for i := 0; i < 97; i++ {
				f = append(f, "x", "y")
			}
			return f
		}(), true, false, errH2TooManyFields},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c h2Check
			c.reset(tc.trailers, 100)
			for i := 0; i+1 < len(tc.fields); i += 2 {
				c.field(tc.fields[i], tc.fields[i+1])
			}
			if got := c.finish(tc.endStream); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func settingsFrame(s ...http2.Setting) []byte {
	b := make([]byte, 9, 9+6*len(s))
	b[2], b[3] = byte(6*len(s)), frameSettings
	for _, x := range s {
		b = binary.BigEndian.AppendUint16(b, uint16(x.ID))
		b = binary.BigEndian.AppendUint32(b, x.Val)
	}
	return b
}

func TestMergeSettings(t *testing.T) {
	in := settingsFrame(
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1}, // invalid: stays
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384},
		http2.Setting{ID: 0x99, Val: 7}, // unknown: passed on once
		http2.Setting{ID: 0x99, Val: 8},
	)
	want := settingsFrame(
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1},
		http2.Setting{ID: 0x99, Val: 8},
	)
	if got := mergeSettings(in, 8); !bytes.Equal(got, want) {
		t.Fatalf("merged\n got %x\nwant %x", got, want)
	}
}

func TestAppendMalformed(t *testing.T) {
	// A padded HEADERS frame: the field goes before the padding.
	b := []byte{0, 0, 5, frameHeaders, flagPadded | flagEndHeaders, 0, 0, 0, 1, 2, 0x82, 0x84, 0, 0}
	got := appendMalformed(b, frameHeaders, b[4], 1, twoHosts)
	want := append([]byte{0, 0, 5 + byte(len(twoHosts)), frameHeaders, flagPadded | flagEndHeaders, 0, 0, 0, 1, 2, 0x82, 0x84}, twoHosts...)
	want = append(want, 0, 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("padded\n got %x\nwant %x", got, want)
	}
	// A full frame: a CONTINUATION of its own follows it.
	full := make([]byte, 9+h2MaxFrameSize, 9+h2MaxFrameSize+9+len(twoHosts))
	full[0], full[1], full[2], full[3], full[4], full[8] = 0, 0x40, 0, frameContinuation, flagEndHeaders, 3
	got = appendMalformed(full, frameContinuation, flagEndHeaders, 3, twoHosts)
	if got[4] != 0 || len(got) != 9+h2MaxFrameSize+9+len(twoHosts) {
		t.Fatalf("full frame: flags %x, length %d", got[4], len(got))
	}
	cont := got[9+h2MaxFrameSize:]
	if cont[2] != byte(len(twoHosts)) || cont[3] != frameContinuation || cont[4] != flagEndHeaders || cont[8] != 3 || !bytes.Equal(cont[9:], twoHosts) {
		t.Fatalf("continuation %x", cont)
	}
}

// BenchmarkH2Guard1000Requests measures what the guard adds to HTTP/2
// requests: a second HPACK decode of a browser-like header block, its
// check and one copy of the frame. One op is a connection of 1000 requests
// (the HPACK dynamic table makes each block depend on the ones before).
func BenchmarkH2Guard1000Requests(b *testing.B) {
	var stream, hb bytes.Buffer
	stream.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&stream, nil)
	_ = fr.WriteSettings()
	enc := hpack.NewEncoder(&hb)
	const n = 1000
	for i := 0; i < n; i++ {
		hb.Reset()
		for _, f := range [][2]string{
			{":method", "GET"}, {":scheme", "https"}, {":authority", "app.example.com"}, {":path", "/api/items?page=" + strconv.Itoa(i)},
			{"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"},
			{"accept", "application/json"}, {"accept-encoding", "gzip, deflate, br"}, {"accept-language", "en-US,en;q=0.9"},
			{"cookie", "session=0123456789abcdef; theme=dark"}, {"x-request-id", "a4b8c1d2-0000-4000-8000-" + strconv.Itoa(100000000000+i)},
		} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	}
	raw := stream.Bytes()
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g := newH2Guard(nil, bytes.NewReader(raw), 100, 60<<10, true, h2Timeouts{}).(*h2guard)
		for {
			if _, err := g.Read(buf); err != nil {
				break
			}
		}
	}
}
