package hcm

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// fuzzPeer is the downstream address FuzzH1Server's connections come
// from: not loopback, so it is what x-forwarded-for must end with.
var fuzzPeer = netip.MustParseAddrPort("192.0.2.7:40000")

// h1End closes every FuzzH1Server input: when the bytes before it leave
// the connection usable, its response ends the connection.
const h1End = "GET /fuzz-end HTTP/1.1\r\nhost: end.example\r\nconnection: close\r\n\r\n"

// checkForwarded is what FuzzH1Server requires of a request that reaches
// the upstream, beyond a well-formed head: hop-by-hop and client-supplied
// certificate headers are gone, and x-forwarded-for ends with the peer.
func checkForwarded(r *http1.Request) string {
	for _, f := range r.Headers {
		switch string(bytes.ToLower(f.Name)) {
		case "keep-alive", "proxy-connection", "x-forwarded-client-cert":
			return fmt.Sprintf("forwarded %q", f.Name)
		}
	}
	xff, _, ok := r.Headers.Joined("x-forwarded-for", nil)
	if !ok {
		return "no x-forwarded-for"
	}
	if i := bytes.LastIndexByte(xff, ','); i >= 0 {
		xff = xff[i+1:]
	}
	if string(bytes.TrimSpace(xff)) != fuzzPeer.Addr().String() {
		return fmt.Sprintf("x-forwarded-for ends with %q", xff)
	}
	return ""
}

// FuzzH1Server writes client bytes into a real HTTP/1.1 connection
// manager over a pipe (remote address, trusted hops, request IDs, path
// normalisation and upgrades on); the route forwards to an HTTP/1.1
// upstream on loopback. Whatever the bytes, the server must not panic or
// hang, and every request that reaches the upstream must be a well-formed
// head with the proxy's sanitising applied (checkForwarded).
func FuzzH1Server(f *testing.F) {
	for _, s := range []string{
		"GET /x HTTP/1.1\r\nhost: a.example\r\n\r\n",
		"POST /p HTTP/1.1\r\nhost: a.example\r\ncontent-length: 4\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2\r\n\r\nabcd",
		"POST /p HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n2;x=y\r\nab\r\n0\r\ntrailer: 1\r\n\r\n",
		"GET /a/../b//c%2Fd HTTP/1.1\r\nhost: a:80\r\nkeep-alive: 5\r\nproxy-connection: x\r\nx-forwarded-client-cert: By=x\r\nx-request-id: r\r\n\r\n",
		"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nhello",
		"GET / HTTP/1.0\r\n\r\nGET /2 HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\nz",
		"CONNECT a.example:443 HTTP/1.1\r\nhost: a.example:443\r\n\r\n",
		"GET http://b.example/abs HTTP/1.1\r\nhost: b.example\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	up := startRecorder(f, checkForwarded)
	defer up.ln.Close()
	mgr, rt, plog := recorderRuntime(up)
	defer mgr.Close()
	// Short idle and header timeouts end a connection whose input stops
	// mid-request, so such inputs cost a fraction of a second.
	cfg := &resource.HCM{RouteConfigName: "rc", ServerName: "envoy", Codec: resource.CodecHTTP1,
		IdleTimeout: 300 * time.Millisecond, StreamIdleTimeout: 300 * time.Millisecond, RequestHeadersTimeout: 300 * time.Millisecond,
		UseRemoteAddress: true, XFFNumTrustedHops: 2, GenerateRequestID: true, NormalizePath: true, MergeSlashes: true,
		Upgrades: map[string]bool{"websocket": true}}
	h := NewHandler(rt, cfg, false)
	var hung atomic.Pointer[string]

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 {
			return
		}
		client, server := net.Pipe()
		served := make(chan struct{})
		go func() {
			defer close(served)
			h.ServeConn(server, listener.ConnInfo{Remote: fuzzPeer, Local: netip.MustParseAddrPort("192.0.2.1:80")})
		}()
		// done: the server closed the connection (after the closing
		// request's response, an error, or a timeout).
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(io.Discard, client)
		}()
		go func() {
			_, _ = client.Write(append(append([]byte(nil), in...), h1End...))
		}()
		select {
		case <-done:
		case <-served:
		case <-time.After(5 * time.Second):
		}
		client.Close()
		checkFuzzRun(t, served, &hung, "%q", in, plog, up)
	})
}
