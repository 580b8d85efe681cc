package hcm

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// outcome is what the router decided for a request.
type outcome uint8

const (
	outForward outcome = iota
	outLocal
)

// stream holds one request's routing state. HTTP/1.1 connections reuse one
// stream for all their requests; its scratch buffers grow once.
type stream struct {
	h *Handler

	// Request view; slices alias the codec's buffers.
	rreq    route.Request
	headers *header.List
	remote  netip.AddrPort
	dst     netip.AddrPort // the connection's (original) destination
	tls     bool
	grpc    bool
	upgrade bool
	h2      bool       // the downstream speaks HTTP/2
	srcBind netip.Addr // original_src: bind upstream sockets here
	srcMark uint32
	// identity is the datapath's source identity of the connection (0:
	// none); identityOnly: judge the peer by it, never by its address.
	identity     uint32
	identityOnly bool
	// The connection's TLS session (nil: plain text) and the RBAC
	// principal names of its client certificate (xfcc.go).
	tlsInfo   *listener.TLSInfo
	peerNames []string

	// Decision.
	routing *Routing
	route   *resource.Route
	wc      *resource.WeightedCluster
	cluster *upstream.Cluster
	host    *upstream.Host
	status  int
	body    []byte
	details string
	// timeout is the route timeout, tryTimeout the per-try timeout (0:
	// none; when set it is shorter than a non-zero timeout).
	timeout    time.Duration
	tryTimeout time.Duration
	flags      uint32 // response flags of a local reply
	// tlsFail is the transport failure reason of an upstream TLS
	// handshake that failed ("": none).
	tlsFail string

	// Access log and policy outcome.
	start      time.Time
	end        time.Time // when the request was served (finish)
	respCode   int
	grpcStatus int // -1: none seen
	verdict    string
	reason     string
	policy     string
	// Header match records (missing and rejected headers, "name: value").
	missingHeaders  []string
	rejectedHeaders []string
	// logEntry is refilled for every logged request and logBuf holds its
	// wire form until the senders have copied it.
	logEntry accesslog.HTTPEntry
	logBuf   []byte

	rnd *rand.Rand

	// Retries and mirrors (retry.go, replay.go, mirror.go).
	tries     tries
	h2tm      h2Timers // the current HTTP/2 upstream attempt's (timeout.go)
	replay    replay
	mirrorOn  []bool // the route's mirror policies sampled for this request
	expBuf    []byte
	headBuf   []byte     // the request head, detached from the read buffer
	attemptRd bodyReader // the HTTP/1.1 request body read by attempts
	respRd    bodyReader // an HTTP/1.1 response body relayed to an HTTP/2 stream

	// Scratch, reused across requests.
	h2Head     []byte // an HTTP/2 request's head bytes (h2head.go)
	pathBuf    []byte
	origBuf    []byte
	hostBuf    []byte
	xffBuf     []byte
	extBuf     []byte
	ridBuf     [36]byte
	locBuf     []byte
	ipBuf      []byte
	normBuf    []byte
	clBuf      []byte
	stBuf      []byte
	grpcBuf    []byte
	grpcMsgBuf []byte

	respFields header.List

	// h2t is the stream timer of an HTTP/2 stream (h2timer.go).
	h2t h2Timer

	// cors is the CORS filter's state (cors.go).
	cors corsState
}

func newStream(h *Handler) *stream {
	return &stream{h: h, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), respFields: make(header.List, 0, 16)}
}

// Header names used on the hot path.
var (
	hHost        = []byte("host")
	hXFF         = []byte("x-forwarded-for")
	hXFP         = []byte("x-forwarded-proto")
	hRequestID   = []byte("x-request-id")
	hExternal    = []byte("x-envoy-external-address")
	hOrigPath    = []byte("x-envoy-original-path")
	hExpectedRQ  = []byte("x-envoy-expected-rq-timeout-ms")
	schemeHTTP   = []byte("http")
	schemeHTTPS  = []byte("https")
	internalOnly = []string{
		"x-envoy-internal", "x-envoy-retriable-status-codes", "x-envoy-retriable-header-names",
		"x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries", "x-envoy-upstream-alt-stat-name",
		"x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms",
		"x-envoy-upstream-rq-timeout-alt-response", "x-envoy-expected-rq-timeout-ms", "x-envoy-force-trace",
		"x-envoy-ip-tags", "x-envoy-original-url", "x-envoy-hedge-on-per-try-timeout",
	}
	edgeOnly = []string{"x-envoy-decorator-operation", "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node"}
)

// sanitize applies Envoy's connection-manager request header mutations.
func (s *stream) sanitize() {
	cfg := s.h.cfg
	l := s.headers
	// Hop-by-hop and proxy-control headers. An allowed upgrade keeps its
	// connection and upgrade headers.
	hasEnvoy := false
	dropXFCC := s.dropXFCC()
	j := 0
	for i := range *l {
		f := (*l)[i]
		n := f.Name
		drop := false
		switch len(n) {
		case 2:
			drop = string(n) == "te" && !header.EqualFold(f.Value, "trailers")
		case 7:
			drop = string(n) == "upgrade" && !s.upgrade
		case 10:
			drop = (string(n) == "connection" && !s.upgrade) || string(n) == "keep-alive"
		case 16:
			drop = string(n) == "proxy-connection"
		case 17:
			drop = string(n) == "transfer-encoding"
		case 23:
			drop = dropXFCC && string(n) == "x-forwarded-client-cert"
		}
		if len(n) > 8 && string(n[:8]) == "x-envoy-" {
			hasEnvoy = true
		}
		if !drop {
			(*l)[j] = f
			j++
		}
	}
	for k := j; k < len(*l); k++ {
		(*l)[k] = header.Field{}
	}
	*l = (*l)[:j]
	edge := cfg.UseRemoteAddress
	if hasEnvoy {
		for _, n := range internalOnly {
			l.Del(n)
		}
		if edge {
			for _, n := range edgeOnly {
				l.Del(n)
			}
		}
	}
	if l.Count("referer") > 1 {
		l.Del("referer")
	}

	proto := schemeHTTP
	if s.tls {
		proto = schemeHTTPS
	}
	var finalRemote []byte
	if cfg.UseRemoteAddress {
		if cfg.XFFNumTrustedHops > 0 {
			finalRemote = s.trustedXFF(cfg.XFFNumTrustedHops)
		}
		if finalRemote == nil {
			s.ipBuf = s.remote.Addr().AppendTo(s.ipBuf[:0])
			finalRemote = s.ipBuf
		}
		if !cfg.SkipXFFAppend {
			s.appendXFF()
		}
		if cfg.XFFNumTrustedHops == 0 || !l.Has("x-forwarded-proto") {
			l.Set(hXFP, proto)
		}
	}
	if !l.Has("x-forwarded-proto") {
		l.Add(hXFP, proto)
	}
	if edge {
		s.extBuf = append(s.extBuf[:0], finalRemote...)
		l.Set(hExternal, s.extBuf)
	}
	if cfg.GenerateRequestID {
		force := edge && !cfg.PreserveExternalRequestID
		if force || !l.Has("x-request-id") {
			l.Set(hRequestID, s.newRequestID())
		}
	}
	if cfg.ForwardClientCert == resource.XFCCAppendForward || cfg.ForwardClientCert == resource.XFCCSanitizeSet {
		s.setXFCC()
	}
}

// appendXFF appends the peer (or, for a loopback peer, the proxy's own
// address) to x-forwarded-for, joining existing values with ",".
func (s *stream) appendXFF() {
	l := s.headers
	addr := s.remote.Addr()
	b := s.xffBuf[:0]
	if v, buf, ok := l.Joined("x-forwarded-for", b); ok {
		b = append(buf[:0], v...)
		b = append(b, ',')
	}
	if addr.IsLoopback() && s.h.rt.LocalAddress != "" {
		b = append(b, s.h.rt.LocalAddress...)
	} else {
		b = addr.AppendTo(b)
	}
	s.xffBuf = b
	l.Set(hXFF, b)
}

// trustedXFF returns the address hops-1 entries from the right of the
// x-forwarded-for list (Envoy's trusted client address), or nil.
func (s *stream) trustedXFF(hops uint32) []byte {
	v, buf, ok := s.headers.Joined("x-forwarded-for", s.xffBuf[:0])
	s.xffBuf = buf
	if !ok {
		return nil
	}
	skip := int(hops) - 1
	for {
		i := bytes.LastIndexByte(v, ',')
		item := bytes.TrimSpace(v[i+1:])
		if skip == 0 {
			if _, err := netip.ParseAddr(string(item)); err != nil {
				return nil
			}
			s.ipBuf = append(s.ipBuf[:0], item...)
			return s.ipBuf
		}
		if i < 0 {
			return nil
		}
		skip--
		v = v[:i]
	}
}

// newRequestID formats a random (version 4) UUID into the stream's buffer.
func (s *stream) newRequestID() []byte {
	var u [16]byte
	a, b := s.rnd.Uint64(), s.rnd.Uint64()
	for i := 0; i < 8; i++ {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	o := s.ridBuf[:0]
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			o = append(o, '-')
		}
		o = append(o, hex[c>>4], hex[c&15])
	}
	return s.ridBuf[:]
}

// process runs the connection manager on a parsed request, the same for
// HTTP/1.1 and HTTP/2: path normalisation first (so that RBAC, the router
// and the upstream all see the normalised path), header sanitising, then
// the filters and the router (decide). s.grpc must already be known.
func (s *stream) process() outcome {
	res := s.normalizeRequestPath()
	s.sanitize()
	switch res {
	case pathReject:
		s.route, s.wc, s.cluster, s.host = nil, nil, nil, nil
		return s.local(400, nil, detailsPathNormalization)
	case pathRedirect:
		s.route, s.wc, s.cluster, s.host = nil, nil, nil, nil
		return s.local(307, nil, detailsPathNormalization)
	}
	return s.decide()
}

// localLocation is the Location header of the local reply process chose:
// set for a route's redirect and for a normalisation redirect.
func (s *stream) localLocation() []byte {
	if s.details == "redirect" || s.details == detailsPathNormalization && s.status == 307 {
		return s.locBuf
	}
	return nil
}

// decide routes the request. It returns outLocal with status/body/details
// set, or outForward with cluster, host, rewritten path and authority.
func (s *stream) decide() outcome {
	s.route, s.wc, s.cluster, s.host = nil, nil, nil, nil
	s.body, s.details = nil, ""
	s.routing = s.h.rt.Load()
	if len(s.h.filters) > 0 {
		if out, stop := s.runFilters(); stop {
			return out
		}
	}
	tbl := s.routing.Routes[s.h.cfg.RouteConfigName]
	if tbl == nil {
		return s.localFlag(404, nil, "route_not_found", flagNR)
	}
	var rt *resource.Route
	if s.cors.routed {
		rt = s.cors.route // the route the CORS filter matched (and cached)
	} else {
		_, rt = tbl.Match(&s.rreq)
	}
	if rt == nil {
		return s.localFlag(404, nil, "route_not_found", flagNR)
	}
	s.route = rt
	switch rt.Action {
	case resource.ActionDirect:
		return s.local(rt.Direct.Status, rt.Direct.Body, "direct_response")
	case resource.ActionRedirect:
		s.locBuf = s.location(rt, s.locBuf[:0])
		return s.local(rt.Redirect.Code, nil, "redirect")
	}
	f := rt.Forward
	name := f.Cluster
	if f.Weighted != nil {
		x := s.rnd.Uint64N(f.TotalWeight)
		for i := range f.Weighted {
			w := &f.Weighted[i]
			if x < uint64(w.Weight) {
				s.wc = w
				break
			}
			x -= uint64(w.Weight)
		}
		name = s.wc.Name
	}
	c := s.routing.Clusters[name]
	if c == nil {
		return s.localFlag(f.NotFoundCode, nil, "cluster_not_found", flagNC)
	}
	s.cluster = c
	if c.IsOriginalDst() {
		s.host = c.PickOriginal(s.dst, s.h2, s.srcBind, s.srcMark)
	} else {
		s.host = s.pick(c)
	}
	if s.host == nil {
		return s.localFlag(503, []byte("no healthy upstream"), "no_healthy_upstream", flagUH)
	}
	// Header edits: weighted-cluster level, then route level.
	if s.wc != nil {
		s.wc.RequestHeaders.Apply(s.headers)
	}
	rt.RequestHeaders.Apply(s.headers)
	s.rewrite(f)
	s.timeout, s.tryTimeout = f.Timeout, f.PerTryTimeout
	if f.TimeoutMS != nil {
		s.headers.Set(hExpectedRQ, f.TimeoutMS)
	}
	return outForward
}

// pick draws an endpoint of c (not ORIGINAL_DST) and, on a listener with
// original_src, the endpoint's pool bound to the client's address.
func (s *stream) pick(c *upstream.Cluster) *upstream.Host {
	h := c.Pick(s.rnd)
	if s.srcBind.IsValid() {
		h = c.BindSource(h, s.srcBind, s.srcMark)
	}
	return h
}

func (s *stream) local(code int, body []byte, details string) outcome {
	s.status, s.body, s.details = code, body, details
	return outLocal
}

// rewrite applies prefix/regex path rewrites and the host rewrite.
func (s *stream) rewrite(f *resource.Forward) {
	r := &s.rreq
	if f.PrefixRewrite != nil || f.RegexRewrite != nil {
		s.origBuf = append(s.origBuf[:0], r.Path...)
		s.headers.Set(hOrigPath, s.origBuf)
		s.pathBuf = rewritePath(s.pathBuf[:0], r.Path, s.route, f.PrefixRewrite, f.RegexRewrite, f.Substitution)
		r.Path = s.pathBuf
	}
	if f.HostRewrite != nil {
		r.Authority = f.HostRewrite
	}
}

// rewritePath appends the rewritten path of p to dst: a prefix rewrite
// replaces the matched prefix (the whole path for an exact match); a regex
// rewrite substitutes within the path and keeps the query string.
func rewritePath(dst, p []byte, rt *resource.Route, prefix []byte, re interface {
	ReplaceAll(src, repl []byte) []byte
}, sub []byte) []byte {
	if prefix != nil {
		n := len(rt.PathValue)
		if rt.PathKind == resource.PathExact {
			n = len(p)
			if i := bytes.IndexByte(p, '?'); i >= 0 {
				n = i
			}
		}
		if n > len(p) {
			n = len(p)
		}
		dst = append(dst, prefix...)
		return append(dst, p[n:]...)
	}
	pathOnly, query := p, []byte(nil)
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		pathOnly, query = p[:i], p[i:]
	}
	dst = append(dst, re.ReplaceAll(pathOnly, sub)...)
	return append(dst, query...)
}

// location builds a redirect's Location as Envoy does.
func (s *stream) location(rt *resource.Route, dst []byte) []byte {
	rd := rt.Redirect
	r := &s.rreq
	scheme := r.Scheme
	if rd.Scheme != "" {
		scheme = []byte(rd.Scheme)
	}
	dst = append(dst, scheme...)
	dst = append(dst, "://"...)
	if rd.Host != "" {
		dst = append(dst, rd.Host...)
	} else {
		dst = append(dst, s.redirectHost(scheme, rd.Port != "")...)
	}
	dst = append(dst, rd.Port...)
	var p []byte
	switch {
	case rd.Path != "":
		if rd.PathHasQuery {
			p = []byte(rd.Path)
		} else {
			p = append(s.pathBuf[:0], rd.Path...)
			if i := bytes.IndexByte(r.Path, '?'); i >= 0 {
				p = append(p, r.Path[i:]...)
			}
			s.pathBuf = p
		}
	case rd.HasPrefix || rd.RegexRewrite != nil:
		var pre []byte
		if rd.HasPrefix {
			pre = rd.PrefixRewrite
			if pre == nil {
				pre = []byte{}
			}
		}
		s.pathBuf = rewritePath(s.pathBuf[:0], r.Path, rt, pre, rd.RegexRewrite, rd.Substitution)
		p = s.pathBuf
	default:
		p = r.Path
	}
	if len(p) == 0 || p[0] != '/' {
		dst = append(dst, '/')
	}
	if !rd.PathHasQuery && rd.StripQuery {
		if i := bytes.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
	}
	return append(dst, p...)
}

// redirectHost is the request host, without its port when a port redirect
// is configured or when the scheme changes and the port is the default of
// the request's x-forwarded-proto.
func (s *stream) redirectHost(scheme []byte, newPort bool) []byte {
	host := s.rreq.Authority
	var end int
	if len(host) > 0 && host[0] == '[' {
		end = bytes.LastIndex(host, []byte("]:"))
		if end >= 0 {
			end++
		}
	} else {
		end = bytes.LastIndexByte(host, ':')
	}
	if end < 0 {
		return host
	}
	port := host[end:]
	xfp, _ := s.headers.Get("x-forwarded-proto")
	remove := newPort
	if !bytes.Equal(scheme, xfp) {
		remove = remove || (header.EqualFold(xfp, "https") && string(port) == ":443")
		remove = remove || (header.EqualFold(xfp, "http") && string(port) == ":80")
	}
	if remove {
		return host[:end]
	}
	return host
}

// stripPort removes a ":port" suffix from an authority.
func stripPort(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.LastIndex(host, []byte("]:")); i >= 0 {
			return host[:i+1]
		}
		return host
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && i+1 < len(host) {
		for _, c := range host[i+1:] {
			if c < '0' || c > '9' {
				return host
			}
		}
		return host[:i]
	}
	return host
}

// grpcStatus maps an HTTP status to a gRPC status code as Envoy does.
func grpcStatus(code int) int {
	switch code {
	case 400:
		return 13
	case 401:
		return 16
	case 403:
		return 7
	case 404:
		return 12
	case 429, 502, 503, 504:
		return 14
	}
	return 2
}
