package hcm

import (
	"bytes"
	"strconv"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

var (
	hdrContentTypeGRPC = []byte("application/grpc")
	continue100        = []byte("HTTP/1.1 100 Continue\r\n\r\n")
)

// handle serves one parsed request, then logs it. It returns false when
// the connection must close.
func (hc *h1conn) handle() bool {
	s := hc.s
	s.begin(false)
	ok := hc.handleRequest()
	s.finish()
	hc.clock = s.end
	if len(hc.h.logs) > 0 {
		s.logHTTP(methods[string(hc.req.Method)], s.rreq.Path, false)
	}
	return ok
}

// handleRequest serves one parsed request.
func (hc *h1conn) handleRequest() bool {
	keep, lr := hc.prepare()
	if lr.code != 0 {
		return hc.writeLocal(lr.code, lr.body, lr.loc, lr.keep, lr.head) && lr.keep
	}
	return hc.forward(keep)
}

// localReply is a reply prepare decided on: code 0 means none (forward).
type localReply struct {
	code       int
	body, loc  []byte
	keep, head bool
}

// prepare runs everything of a parsed request before it is forwarded:
// protocol checks, routing and the filters (s.process). It returns whether
// the connection may be kept and, when the request is answered locally,
// the reply (its request consumed from the buffer); the caller writes it.
func (hc *h1conn) prepare() (keep bool, lr localReply) {
	req := &hc.req
	s := hc.s
	cfg := hc.h.cfg
	s.route, s.wc, s.grpc, s.upgrade = nil, nil, false, false
	keep = !req.Close && !hc.h.draining.Load()

	if ct, ok := req.Headers.Get("content-type"); ok && bytes.HasPrefix(ct, hdrContentTypeGRPC) {
		s.grpc = true
	}
	if req.Minor == 0 {
		hc.r += req.HeadLen
		return false, localReply{code: 426}
	}
	if req.Upgrade {
		up, _ := req.Headers.Get("upgrade")
		if !cfg.Upgrades[string(bytes.ToLower(up))] {
			hc.r += req.HeadLen
			return false, localReply{code: 403}
		}
		s.upgrade = true
	}

	host := req.Host
	if cfg.StripAnyHostPort {
		host = stripPort(host)
		if len(host) != len(req.Host) {
			req.Headers.Set(hHost, host)
		}
	}
	r := &s.rreq
	r.Method, r.Authority, r.Path = req.Method, host, req.Path
	r.Scheme = schemeHTTP
	if hc.h.tls {
		r.Scheme = schemeHTTPS
	}
	r.Headers = req.Headers
	s.headers = &r.Headers

	if s.process() == outLocal {
		hc.r += req.HeadLen
		if !hc.skipBody() {
			keep = false
		}
		return keep, localReply{code: s.status, body: s.body, loc: s.localLocation(), keep: keep, head: string(req.Method) == "HEAD"}
	}
	return keep, localReply{}
}

// skipBody consumes a request body that is already fully buffered. It
// returns false when the body is not (the connection must then close).
func (hc *h1conn) skipBody() bool {
	req := &hc.req
	switch req.Framing {
	case http1.Length:
		if int64(hc.w-hc.r) < req.ContentLength {
			return false
		}
		hc.r += int(req.ContentLength)
	case http1.Chunked:
		hc.chunk.Reset()
		for !hc.chunk.Done() {
			if hc.r == hc.w {
				return false
			}
			n, _, err := hc.chunk.Decode(hc.buf[hc.r:hc.w])
			hc.r += n
			if err != nil {
				return false
			}
		}
	}
	return true
}

// writeLocal writes a locally generated response. loc is a redirect
// Location. It returns false when the write failed.
func (hc *h1conn) writeLocal(code int, body, loc []byte, keep, head bool) bool {
	out := hc.encodeLocal(code, body, loc, keep, head)
	_, err := hc.write(out)
	return err == nil
}

// encodeLocal builds a local reply into hc.out and returns it.
func (hc *h1conn) encodeLocal(code int, body, loc []byte, keep, head bool) []byte {
	s := hc.s
	code, body = s.mapLocal(code, body)
	s.respCode = code
	now := time.Now()
	keep = keep && !hc.h.draining.Load()
	l := s.localHeaders(code, body, loc, now)
	out := hc.out[:0]
	if s.grpc {
		out = http1.AppendStatusLine(out, 200)
	} else {
		out = http1.AppendStatusLine(out, code)
	}
	out = http1.AppendFields(out, l)
	if !keep {
		out = append(out, "connection: close\r\n"...)
	}
	out = append(out, '\r', '\n')
	if !s.grpc && !head {
		out = append(out, body...)
	}
	hc.out = out
	return out
}

// localHeaders builds the headers of a local reply, applying the matched
// route's response header edits as Envoy's router does.
func (s *stream) localHeaders(code int, body, loc []byte, now time.Time) header.List {
	l := s.respFields[:0]
	if s.grpc {
		s.grpcStatus = grpcStatus(code)
		s.grpcBuf = strconv.AppendInt(s.grpcBuf[:0], int64(s.grpcStatus), 10)
		l.Add(hContentType, hdrContentTypeGRPC)
		l.Add(hGRPCStatus, s.grpcBuf)
		msg := body
		if len(msg) == 0 {
			msg = []byte(http1.StatusText(code))
		}
		s.grpcMsgBuf = appendGRPCMessage(s.grpcMsgBuf[:0], msg)
		l.Add(hGRPCMessage, s.grpcMsgBuf)
		l.Add(hContentLength, zero)
	} else {
		if loc != nil {
			l.Add(hLocation, loc)
		}
		s.clBuf = strconv.AppendInt(s.clBuf[:0], int64(len(body)), 10)
		l.Add(hContentLength, s.clBuf)
		if len(body) > 0 {
			l.Add(hContentType, textPlain)
		}
	}
	l.Add(hDate, s.h.rt.dateHeader(now))
	l.Add(hServer, s.h.serverName)
	if s.flags&flagUO != 0 {
		l.Add(hOverloaded, hTrue) // the router's mark of a circuit breaker overflow
	}
	if s.route != nil {
		if s.wc != nil {
			s.wc.ResponseHeaders.Apply(&l)
		}
		s.route.ResponseHeaders.Apply(&l)
	}
	if s.cors.active {
		s.corsResponse(&l)
	}
	return l
}

var (
	hContentType   = []byte("content-type")
	hContentLength = []byte("content-length")
	hLocation      = []byte("location")
	hDate          = []byte("date")
	hServer        = []byte("server")
	hGRPCStatus    = []byte("grpc-status")
	hGRPCMessage   = []byte("grpc-message")
	hServiceTime   = []byte("x-envoy-upstream-service-time")
	textPlain      = []byte("text/plain")
	hOverloaded    = []byte("x-envoy-overloaded")
	hTrue          = []byte("true")
	zero           = []byte("0")
)

// finishResponseHeaders applies Envoy's response processing to upstream
// response headers l: hop-by-hop removal, server overwrite, route and
// weighted-cluster edits and the upstream service time.
func (s *stream) finishResponseHeaders(l *header.List, upgrade bool, serviceTime time.Duration) {
	j := 0
	for i := range *l {
		f := (*l)[i]
		n := f.Name
		drop := false
		switch len(n) {
		case 7:
			drop = string(n) == "upgrade" && !upgrade
		case 10:
			drop = (string(n) == "connection" && !upgrade) || string(n) == "keep-alive"
		case 16:
			drop = string(n) == "proxy-connection"
		case 17:
			drop = string(n) == "transfer-encoding"
		}
		if !drop {
			(*l)[j] = f
			j++
		}
	}
	*l = (*l)[:j]
	l.Set(hServer, s.h.serverName)
	s.stBuf = strconv.AppendInt(s.stBuf[:0], serviceTime.Milliseconds(), 10)
	l.Add(hServiceTime, s.stBuf)
	if s.wc != nil {
		s.wc.ResponseHeaders.Apply(l)
	}
	if s.route != nil {
		s.route.ResponseHeaders.Apply(l)
	}
	if s.cors.active {
		s.corsResponse(l)
	}
}

// forward sends the request to the chosen host and relays the response.
func (hc *h1conn) forward(keep bool) bool {
	s := hc.s
	if f := s.route.Forward; !s.upgrade && (f.Retry != nil || len(f.Mirrors) > 0 && s.sampleMirrors()) {
		return hc.forwardTries(keep)
	}
	// Streaming a body, or an upgraded connection's bytes, reuses the
	// read buffer the request head views, and the access log reads the
	// head after the exchange: with loggers, the head gets its own bytes
	// first (forwardTries does this for every body).
	if len(hc.h.logs) > 0 && (hc.req.Framing != http1.NoBody || s.upgrade) {
		s.detachHead()
		hc.req.Method = s.rreq.Method
	}
	if s.host.Pool.HTTP2 {
		return hc.forwardH2(keep)
	}
	return hc.forwardH1(keep)
}

var _ = resource.CodecAuto
