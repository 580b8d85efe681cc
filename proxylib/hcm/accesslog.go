package hcm

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
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

// httpEntry holds every message of one access-log entry, so building an
// entry costs one allocation instead of one per message. The messages
// point into the struct; the whole is immutable once logged.
type httpEntry struct {
	e      datav3.HTTPAccessLogEntry
	common datav3.AccessLogCommon
	req    datav3.HTTPRequestProperties
	resp   datav3.HTTPResponseProperties
	start  timestamppb.Timestamp
	dur    durationpb.Duration
	code   wrapperspb.UInt32Value
	md     corev3.Metadata
	l7     structpb.Struct
	// One slot per l7meta key logHTTP can set.
	vals [maxL7]structpb.Value
	strs [maxL7]structpb.Value_StringValue
	nums [maxL7Numbers]structpb.Value_NumberValue
	nv   int
	nn   int
}

// maxL7 is the number of l7meta keys an HTTP entry can carry: protocol,
// verdict, policy, reason, source identity, missing and rejected headers,
// gRPC service, method and status; maxL7Numbers of them are numbers
// (source identity, gRPC status).
const (
	maxL7        = 10
	maxL7Numbers = 2
)

func (x *httpEntry) str(k, v string) {
	x.strs[x.nv].StringValue = accesslog.Bound(v)
	x.vals[x.nv].Kind = &x.strs[x.nv]
	x.l7.Fields[k] = &x.vals[x.nv]
	x.nv++
}

func (x *httpEntry) number(k string, v float64) {
	x.nums[x.nn].NumberValue = v
	x.vals[x.nv].Kind = &x.nums[x.nn]
	x.l7.Fields[k] = &x.vals[x.nv]
	x.nv++
	x.nn++
}

func (x *httpEntry) list(k string, v []string) {
	v = accesslog.BoundList(v)
	vals := make([]*structpb.Value, len(v))
	for i, s := range v {
		vals[i] = structpb.NewStringValue(s)
	}
	x.l7.Fields[k] = structpb.NewListValue(&structpb.ListValue{Values: vals})
}

// logHTTP sends the request's access-log entry to every configured
// logger. Only called when the connection manager has loggers.
func (s *stream) logHTTP(method, path, proto string) {
	e := s.httpEntry(method, path, proto)
	for _, l := range s.h.logs {
		l.Log(e)
	}
}

// httpEntry builds the request's access-log entry.
func (s *stream) httpEntry(method, path, proto string) *datav3.HTTPAccessLogEntry {
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
	x := &httpEntry{}
	x.l7.Fields = make(map[string]*structpb.Value, 8)
	x.str(l7meta.Protocol, protocol)
	x.str(l7meta.Verdict, verdict)
	if s.policy != "" {
		x.str(l7meta.Policy, s.policy)
	}
	if s.reason != "" {
		x.str(l7meta.Reason, s.reason)
	}
	if s.identity != 0 {
		x.number(l7meta.SourceIdentity, float64(s.identity))
	}
	if len(s.missingHeaders) > 0 {
		x.list(l7meta.MissingHeaders, s.missingHeaders)
	}
	if len(s.rejectedHeaders) > 0 {
		x.list(l7meta.RejectedHeaders, s.rejectedHeaders)
	}
	if s.grpc {
		svc, m := splitGRPCPath(path)
		x.str(l7meta.GRPCService, svc)
		x.str(l7meta.GRPCMethod, m)
		if s.grpcStatus >= 0 {
			x.number(l7meta.GRPCStatus, float64(s.grpcStatus))
		}
	}
	x.md.FilterMetadata = map[string]*structpb.Struct{l7meta.Namespace: &x.l7}

	now := time.Now()
	x.start = timestamppb.Timestamp{Seconds: s.start.Unix(), Nanos: int32(s.start.Nanosecond())}
	d := now.Sub(s.start)
	x.dur = durationpb.Duration{Seconds: int64(d / time.Second), Nanos: int32(d % time.Second)}
	c := &x.common
	c.StartTime, c.Duration, c.TimeToLastDownstreamTxByte = &x.start, &x.dur, &x.dur
	// The connection's addresses are rendered once and shared by its
	// entries (read-only after Log).
	c.DownstreamRemoteAddress = s.logAddrs.remote.Address(s.remote)
	c.DownstreamDirectRemoteAddress = c.DownstreamRemoteAddress
	c.DownstreamLocalAddress = s.logAddrs.local.Address(s.dst)
	if s.host != nil {
		c.UpstreamRemoteAddress = s.logAddrs.upstream.Address(parseAddrPort(s.host.Addr))
	}
	if s.cluster != nil {
		c.UpstreamCluster = s.cluster.Config.Name
	}
	if s.route != nil {
		c.RouteName = s.route.Name
	}
	c.Metadata = &x.md
	c.ResponseFlags = responseFlags(s.flags)

	// The request's strings are copied out of the codec's buffers with
	// one allocation and sliced, each cut to the schema's field bound.
	var lens [5]int
	b := accesslog.AppendBound(s.logBuf[:0], s.rreq.Scheme)
	lens[0] = len(b)
	b = accesslog.AppendBound(b, s.rreq.Authority)
	lens[1] = len(b) - lens[0]
	var ua, rid, xff []byte
	if s.headers != nil {
		ua, _ = s.headers.Get("user-agent")
		rid, _ = s.headers.Get("x-request-id")
		xff, _ = s.headers.Get("x-forwarded-for")
	}
	for i, v := range [3][]byte{ua, rid, xff} {
		n := len(b)
		b = accesslog.AppendBound(b, v)
		lens[2+i] = len(b) - n
	}
	all := string(b)
	// A connection keeps its scratch only while it stays small; a rare
	// huge header set is not held for the connection's lifetime.
	if cap(b) <= 4<<10 {
		s.logBuf = b
	} else {
		s.logBuf = nil
	}
	cut := func(n int) string {
		v := all[:n]
		all = all[n:]
		return v
	}
	r := &x.req
	r.RequestMethod = methods[method]
	r.Scheme = cut(lens[0])
	r.Authority = cut(lens[1])
	r.Path = accesslog.Bound(path)
	r.UserAgent, r.RequestId, r.ForwardedFor = cut(lens[2]), cut(lens[3]), cut(lens[4])

	x.resp.ResponseCodeDetails = s.details
	if s.respCode != 0 {
		x.code.Value = uint32(s.respCode)
		x.resp.ResponseCode = &x.code
	}
	if s.grpc && s.grpcStatus >= 0 {
		x.resp.ResponseTrailers = map[string]string{"grpc-status": strconv.Itoa(s.grpcStatus)}
	}
	x.e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP11
	if proto == "HTTP/2" {
		x.e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP2
	}
	x.e.CommonProperties, x.e.Request, x.e.Response = c, r, &x.resp
	return &x.e
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
