package hcm

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

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
// logger. Only called when the connection manager has loggers.
func (s *stream) logHTTP(method, path, proto string) {
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
	l7 := map[string]any{l7meta.Protocol: protocol, l7meta.Verdict: verdict}
	if s.policy != "" {
		l7[l7meta.Policy] = s.policy
	}
	if s.reason != "" {
		l7[l7meta.Reason] = s.reason
	}
	if len(s.missingHeaders) > 0 {
		l7[l7meta.MissingHeaders] = s.missingHeaders
	}
	if len(s.rejectedHeaders) > 0 {
		l7[l7meta.RejectedHeaders] = s.rejectedHeaders
	}
	if s.grpc {
		svc, m := splitGRPCPath(path)
		l7[l7meta.GRPCService], l7[l7meta.GRPCMethod] = svc, m
		if s.grpcStatus >= 0 {
			l7[l7meta.GRPCStatus] = s.grpcStatus
		}
	}
	var upstreamAddr, cluster string
	if s.host != nil {
		upstreamAddr = s.host.Addr
	}
	if s.cluster != nil {
		cluster = s.cluster.Config.Name
	}
	common := accesslog.Common(s.start, time.Since(s.start), s.remote, s.dst, parseAddrPort(upstreamAddr), cluster, l7)
	if s.route != nil {
		common.RouteName = s.route.Name
	}
	common.ResponseFlags = responseFlags(s.flags)
	req := &datav3.HTTPRequestProperties{
		RequestMethod: methods[method],
		Scheme:        string(s.rreq.Scheme),
		Authority:     string(s.rreq.Authority),
		Path:          path,
	}
	if s.headers != nil {
		if v, ok := s.headers.Get("user-agent"); ok {
			req.UserAgent = string(v)
		}
		if v, ok := s.headers.Get("x-request-id"); ok {
			req.RequestId = string(v)
		}
		if v, ok := s.headers.Get("x-forwarded-for"); ok {
			req.ForwardedFor = string(v)
		}
	}
	resp := &datav3.HTTPResponseProperties{ResponseCodeDetails: s.details}
	if s.respCode != 0 {
		resp.ResponseCode = wrapperspb.UInt32(uint32(s.respCode))
	}
	if s.grpc && s.grpcStatus >= 0 {
		resp.ResponseTrailers = map[string]string{"grpc-status": strconv.Itoa(s.grpcStatus)}
	}
	version := datav3.HTTPAccessLogEntry_HTTP11
	if proto == "HTTP/2" {
		version = datav3.HTTPAccessLogEntry_HTTP2
	}
	e := &datav3.HTTPAccessLogEntry{CommonProperties: common, ProtocolVersion: version, Request: req, Response: resp}
	for _, l := range s.h.logs {
		l.Log(e)
	}
}

func responseFlags(f uint32) *datav3.ResponseFlags {
	if f == 0 {
		return nil
	}
	return &datav3.ResponseFlags{
		NoRouteFound:                  f&flagNR != 0,
		NoClusterFound:                f&flagNC != 0,
		NoHealthyUpstream:             f&flagUH != 0,
		UpstreamConnectionFailure:     f&flagUF != 0,
		UpstreamConnectionTermination: f&flagUC != 0,
		UpstreamRequestTimeout:        f&flagUT != 0,
		UpstreamProtocolError:         f&flagUPE != 0,
		NoFilterConfigFound:           f&flagNFCF != 0,
		DownstreamProtocolError:       f&flagDPE != 0,
		UpstreamOverflow:              f&flagUO != 0,
		StreamIdleTimeout:             f&flagSI != 0,
		UpstreamRemoteReset:           f&flagUR != 0,
		UpstreamRetryLimitExceeded:    f&flagURX != 0,
	}
}

// splitGRPCPath splits "/pkg.Service/Method".
func splitGRPCPath(p string) (string, string) {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, ""
}

// parseAddrPort parses an upstream host address; pipes yield the zero
// value.
func parseAddrPort(s string) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(s)
	return ap
}
