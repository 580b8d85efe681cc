package hcm

import (
	"bytes"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// begin resets the per-request outcome.
func (s *stream) begin(h2 bool) {
	s.h2 = h2
	s.flags, s.respCode, s.grpcStatus = 0, 0, -1
	s.tries.n, s.tlsFail = 0, ""
	s.mirrorOn = s.mirrorOn[:0]
	s.verdict, s.reason, s.policy = "", "", ""
	s.missingHeaders, s.rejectedHeaders = nil, nil
	s.cors.reset()
	// Always: the request metrics time every request, not only logged
	// ones.
	s.start = time.Now()
}

// noteGRPCStatus records the grpc-status of a forwarded response (trailers,
// or headers of a trailers-only response).
func (s *stream) noteGRPCStatus(hdr, trailer http.Header) {
	v := trailer.Get("grpc-status")
	if v == "" {
		v = hdr.Get("grpc-status")
	}
	if n, err := strconv.Atoi(v); err == nil {
		s.grpcStatus = n
	}
}

var methods = map[string]corev3.RequestMethod{
	"GET": corev3.RequestMethod_GET, "HEAD": corev3.RequestMethod_HEAD, "POST": corev3.RequestMethod_POST,
	"PUT": corev3.RequestMethod_PUT, "DELETE": corev3.RequestMethod_DELETE, "CONNECT": corev3.RequestMethod_CONNECT,
	"OPTIONS": corev3.RequestMethod_OPTIONS, "TRACE": corev3.RequestMethod_TRACE, "PATCH": corev3.RequestMethod_PATCH,
}

// logHTTP sends the request's access-log entry to every configured
// logger. Only called when the connection manager has loggers. The
// entry is encoded once into the connection's scratch buffer, and each
// sender copies it into its own: nothing is allocated per request once
// the buffers have grown (see doc.go).
func (s *stream) logHTTP(method corev3.RequestMethod, path []byte, h2 bool) {
	x := s.httpEntry(method, path, h2)
	b, err := x.AppendProto(s.logBuf[:0])
	// The entry views the request's buffers, which the connection lends
	// back while idle: it lets go of them at once.
	x.Reset()
	// A connection keeps its scratch only while it stays small; a rare
	// huge entry is not held for the connection's lifetime.
	if cap(b) <= 8<<10 {
		s.logBuf = b[:0]
	} else {
		s.logBuf = nil
	}
	if err != nil {
		// Not UTF-8: protobuf cannot carry the entry; it is dropped and
		// counted, as a message that failed to marshal was.
		for _, l := range s.h.logs {
			l.Drop()
		}
		return
	}
	for _, l := range s.h.logs {
		l.LogEncoded(b)
	}
}

// httpEntry fills the connection's entry with the request's fields. The
// entry points into the request's head, which must still be the
// request's: an HTTP/1.1 head views the connection's read buffer, which a
// streamed body or an upgraded connection reuses, so with loggers such a
// request's head is detached first (h1conn.forward, forwardTries); the
// entry is encoded before the next request reuses anything.
func (s *stream) httpEntry(method corev3.RequestMethod, path []byte, h2 bool) *accesslog.HTTPEntry {
	verdict := s.verdict
	if verdict == "" {
		verdict = l7meta.VerdictForwarded
		if s.flags != 0 {
			verdict = l7meta.VerdictError
		}
	}
	protocol := "http"
	if s.grpc {
		protocol = "grpc"
	}
	x := &s.logEntry
	x.Reset()
	l7 := &x.L7
	l7.String(l7meta.Protocol, protocol)
	l7.String(l7meta.Verdict, verdict)
	if s.policy != "" {
		l7.String(l7meta.Policy, s.policy)
	}
	if s.reason != "" {
		l7.String(l7meta.Reason, s.reason)
	}
	if s.identity != 0 {
		l7.Number(l7meta.SourceIdentity, float64(s.identity))
	}
	if len(s.missingHeaders) > 0 {
		l7.List(l7meta.MissingHeaders, s.missingHeaders)
	}
	if len(s.rejectedHeaders) > 0 {
		l7.List(l7meta.RejectedHeaders, s.rejectedHeaders)
	}
	if s.grpc {
		svc, m := splitGRPCPath(path)
		l7.Bytes(l7meta.GRPCService, svc)
		l7.Bytes(l7meta.GRPCMethod, m)
		if s.grpcStatus >= 0 {
			l7.Number(l7meta.GRPCStatus, float64(s.grpcStatus))
			// strconv renders numbers below 100 without allocating.
			x.Trailers = append(x.Trailers, [2]string{"grpc-status", strconv.Itoa(s.grpcStatus)})
		}
	}

	x.Start, x.Duration = s.start, time.Since(s.start)
	x.Remote, x.Local = s.remote, s.dst
	if s.host != nil {
		x.Upstream = parseAddrPort(s.host.Addr)
	}
	if s.cluster != nil {
		x.UpstreamCluster = s.cluster.Config.Name
	}
	if s.route != nil {
		x.RouteName = s.route.Name
	}
	x.Flags = responseFlags(s.flags)

	x.Method = method
	x.Scheme, x.Authority, x.Path = s.rreq.Scheme, s.rreq.Authority, path
	if s.headers != nil {
		x.UserAgent, _ = s.headers.Get("user-agent")
		x.RequestID, _ = s.headers.Get("x-request-id")
		x.ForwardedFor, _ = s.headers.Get("x-forwarded-for")
	}
	x.ResponseCodeDetails = s.details
	if s.respCode != 0 {
		x.ResponseCode = uint32(s.respCode)
	}
	x.Protocol = datav3.HTTPAccessLogEntry_HTTP11
	if h2 {
		x.Protocol = datav3.HTTPAccessLogEntry_HTTP2
	}
	return x
}

// flagBits maps the connection manager's response flags to the access
// log's; RBAC has no flag of its own there (the verdict carries it).
var flagBits = [...]struct {
	f uint32
	a accesslog.ResponseFlags
}{
	{flagNR, accesslog.NoRouteFound}, {flagNC, accesslog.NoClusterFound}, {flagUH, accesslog.NoHealthyUpstream},
	{flagUF, accesslog.UpstreamConnectionFailure}, {flagUC, accesslog.UpstreamConnectionTermination},
	{flagUT, accesslog.UpstreamRequestTimeout}, {flagUPE, accesslog.UpstreamProtocolError},
	{flagNFCF, accesslog.NoFilterConfigFound}, {flagDPE, accesslog.DownstreamProtocolError},
	{flagUO, accesslog.UpstreamOverflow}, {flagSI, accesslog.StreamIdleTimeout},
	{flagUR, accesslog.UpstreamRemoteReset}, {flagURX, accesslog.UpstreamRetryLimitExceeded},
}

func responseFlags(f uint32) accesslog.ResponseFlags {
	var out accesslog.ResponseFlags
	for _, b := range flagBits {
		if f&b.f != 0 {
			out |= b.a
		}
	}
	return out
}

// splitGRPCPath splits "/pkg.Service/Method".
func splitGRPCPath(p []byte) ([]byte, []byte) {
	p = bytes.TrimPrefix(p, []byte("/"))
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, nil
}

// parseAddrPort parses an upstream host address; pipes yield the zero
// value.
func parseAddrPort(s string) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(s)
	return ap
}
