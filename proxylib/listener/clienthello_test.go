package listener

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// clientHello returns the bytes a Go TLS client sends first for sni.
func clientHello(t testing.TB, sni string, alpn ...string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: sni == "", NextProtos: alpn})
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_ = c.Handshake()
	}()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// fragment re-frames a single-record ClientHello into records of at most
// size payload bytes each.
func fragment(rec []byte, size int) []byte {
	payload := rec[5:]
	var out []byte
	for len(payload) > 0 {
		n := min(size, len(payload))
		out = append(out, rec[0], rec[1], rec[2], byte(n>>8), byte(n))
		out = append(out, payload[:n]...)
		payload = payload[n:]
	}
	return out
}

func TestParseClientHello(t *testing.T) {
	hello := clientHello(t, "Passthrough.Example.com", "h2")
	noSNI := clientHello(t, "")
	for _, tc := range []struct {
		name  string
		in    []byte
		state helloState
		sni   string
	}{
		{"whole", hello, helloDone, "Passthrough.Example.com"},
		{"trailing application bytes", append(append([]byte{}, hello...), 0x17, 3, 3, 0, 1, 0), helloDone, "Passthrough.Example.com"},
		{"no SNI", noSNI, helloDone, ""},
		{"fragmented in 7-byte records", fragment(hello, 7), helloDone, "Passthrough.Example.com"},
		{"empty", nil, helloMore, ""},
		{"record header only", hello[:5], helloMore, ""},
		{"cut in the extensions", hello[:len(hello)-3], helloMore, ""},
		{"cut between fragments", fragment(hello, 50)[:110], helloMore, ""},
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), helloNotTLS, ""},
		{"SSLv2-style first byte", []byte{0x80, 0x2e, 0x01}, helloNotTLS, ""},
		{"alert record", []byte{0x15, 3, 3, 0, 2, 2, 40}, helloNotTLS, ""},
		{"version major 2", []byte{0x16, 2, 0, 0, 5}, helloNotTLS, ""},
		{"empty record", []byte{0x16, 3, 1, 0, 0}, helloNotTLS, ""},
		{"oversized record", []byte{0x16, 3, 1, 0x40, 0x01}, helloNotTLS, ""},
		{"server hello", []byte{0x16, 3, 3, 0, 4, 2, 0, 0, 0}, helloNotTLS, ""},
		{"hello too short to hold a version and random", []byte{0x16, 3, 3, 0, 4, 1, 0, 0, 4}, helloNotTLS, ""},
		{"interleaved alert", append(fragment(hello, 50)[:55], 0x15, 3, 3, 0, 2, 2, 40), helloNotTLS, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, info := parseClientHello(tc.in)
			if st != tc.state || info.SNI != tc.sni {
				t.Fatalf("got state %d sni %q, want %d %q", st, info.SNI, tc.state, tc.sni)
			}
		})
	}
}

// TestParseClientHelloMalformed corrupts a real ClientHello's server_name
// extension: every corruption must read as "not TLS", never as a name.
func TestParseClientHelloMalformed(t *testing.T) {
	hello := clientHello(t, "a.example")
	i := bytes.Index(hello, []byte("a.example"))
	if i < 0 {
		t.Fatal("no name in the hello")
	}
	set := func(f func(b []byte)) []byte {
		b := append([]byte(nil), hello...)
		f(b)
		return b
	}
	for name, in := range map[string][]byte{
		"NUL in the name":      set(func(b []byte) { b[i+1] = 0 }),
		"space in the name":    set(func(b []byte) { b[i+1] = ' ' }),
		"8-bit byte in name":   set(func(b []byte) { b[i+1] = 0xc3 }),
		"name longer than ext": set(func(b []byte) { b[i-1] += 50 }),
		"list longer than ext": set(func(b []byte) { b[i-4] += 50 }),
		"hello length too big": set(func(b []byte) { b[8]++; b[4]++ }),
	} {
		t.Run(name, func(t *testing.T) {
			st, info := parseClientHello(in)
			if st == helloDone {
				t.Fatalf("accepted a malformed hello (sni %q)", info.SNI)
			}
		})
	}
}

func FuzzParseClientHello(f *testing.F) {
	hello := clientHello(f, "fuzz.example")
	f.Add(hello)
	f.Add(fragment(hello, 16))
	f.Add(clientHello(f, ""))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, info := parseClientHello(b)
		if st != helloDone && info.SNI != "" {
			t.Fatalf("name %q from an incomplete hello", info.SNI)
		}
		for _, c := range []byte(info.SNI) {
			if c <= ' ' || c >= 0x7f {
				t.Fatalf("name %q with byte %#x", info.SNI, c)
			}
		}
		// A longer input never turns a complete or rejected verdict back
		// into "more".
		if st != helloMore {
			if st2, _ := parseClientHello(append(append([]byte(nil), b...), 0, 0, 0)); st2 == helloMore {
				t.Fatalf("verdict %d became 'more' with bytes appended", st)
			}
		}
	})
}

func TestSelectChain(t *testing.T) {
	exact := &Chain{ServerNames: []string{"a.example.com"}}
	wild := &Chain{ServerNames: []string{"*.example.com"}}
	deeper := &Chain{ServerNames: []string{"*.b.example.com"}}
	def := &Chain{}
	port := &Chain{DestinationPort: 8443, ServerNames: []string{"a.example.com"}}
	chains := []*Chain{def, wild, exact, deeper, port}
	for _, tc := range []struct {
		sni  string
		port uint16
		want *Chain
	}{
		{"a.example.com", 443, exact},
		{"x.example.com", 443, wild},
		{"x.y.example.com", 443, wild},
		{"x.b.example.com", 443, deeper},
		{"example.com", 443, def},
		{"", 443, def},
		{"a.example.com", 8443, port},
		// The port prunes first: a chain naming 8443 exists, so chains
		// naming no port are out of the running for 8443.
		{"x.example.com", 8443, nil},
		{"", 8443, nil},
	} {
		if got := selectChain(chains, tc.port, tc.sni, TransportTLS, netip.Addr{}); got != tc.want {
			t.Errorf("selectChain(%q, %d) = %+v, want %+v", tc.sni, tc.port, got, tc.want)
		}
	}
	if got := selectChain([]*Chain{exact}, 443, "b.example.com", TransportTLS, netip.Addr{}); got != nil {
		t.Errorf("no default chain: got %+v, want nil", got)
	}
}

// TestSelectChainBySource: after port and server name, the longest source
// prefix holding the client's address picks the chain, the chain without
// prefixes takes the rest, and no stage falls back to a less specific
// group of an earlier one.
func TestSelectChainBySource(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	def := &Chain{}
	shop := &Chain{SourcePrefixes: pfx("10.244.1.30/32", "fd00::1e/128")}
	wide := &Chain{SourcePrefixes: pfx("10.244.0.0/16")}
	sniOnly := &Chain{ServerNames: []string{"a.example.com"}, SourcePrefixes: pfx("10.1.0.0/16")}
	chains := []*Chain{def, wide, shop, sniOnly}
	for _, tc := range []struct {
		remote string
		sni    string
		want   *Chain
	}{
		{"10.244.1.30", "", shop},
		{"::ffff:10.244.1.30", "", shop}, // a v4 client on a dual-stack socket
		{"fd00::1e", "", shop},
		{"10.244.1.31", "", wide},
		{"10.9.9.9", "", def},
		{"10.1.2.3", "a.example.com", sniOnly},
		// The chain naming the server name is the only candidate; its
		// prefixes do not hold the client, and the chains naming no
		// server name are not tried.
		{"10.244.1.30", "a.example.com", nil},
	} {
		if got := selectChain(chains, 80, tc.sni, TransportRawBuffer, netip.MustParseAddr(tc.remote)); got != tc.want {
			t.Errorf("selectChain(%s, %q) = %p, want %p", tc.remote, tc.sni, got, tc.want)
		}
	}
	if got := selectChain([]*Chain{shop}, 80, "", TransportRawBuffer, netip.MustParseAddr("10.9.9.9")); got != nil {
		t.Errorf("no chain for the client: got %+v, want nil", got)
	}
}

// TestSelectChainByTransport: after the server name, the chains naming
// the detected transport protocol win over those naming none, and a group
// without a chain for the transport is not left for a less specific
// server name.
func TestSelectChainByTransport(t *testing.T) {
	plain := &Chain{TransportProtocol: TransportRawBuffer}
	anyTLS := &Chain{TransportProtocol: TransportTLS}
	named := &Chain{ServerNames: []string{"a.example.com"}, TransportProtocol: TransportTLS}
	either := &Chain{}
	for _, tc := range []struct {
		name      string
		chains    []*Chain
		sni       string
		transport string
		want      *Chain
	}{
		{"plain text to the raw_buffer chain", []*Chain{anyTLS, plain, named}, "", TransportRawBuffer, plain},
		{"TLS without SNI to the tls chain", []*Chain{plain, anyTLS, named}, "", TransportTLS, anyTLS},
		{"TLS with a named SNI", []*Chain{plain, anyTLS, named}, "a.example.com", TransportTLS, named},
		{"TLS with another SNI to the catch-all tls chain", []*Chain{plain, anyTLS, named}, "b.example.com", TransportTLS, anyTLS},
		{"no catch-all tls chain: TLS is not handed to the plain chain", []*Chain{plain, named}, "b.example.com", TransportTLS, nil},
		{"a named transport wins over none", []*Chain{either, plain}, "", TransportRawBuffer, plain},
		{"none takes what no chain names", []*Chain{either, plain}, "", TransportTLS, either},
		// The server name picked the group; its only chain is for TLS, so
		// plain text gets nothing rather than a chain naming no name.
		{"no fallback to a less specific name", []*Chain{named, plain}, "a.example.com", TransportRawBuffer, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := selectChain(tc.chains, 8080, tc.sni, tc.transport, netip.Addr{}); got != tc.want {
				t.Errorf("selectChain(%q, %s) = %p, want %p", tc.sni, tc.transport, got, tc.want)
			}
		})
	}
}
