package hcm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

var streamPool sync.Pool

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// serveHTTP2 handles one HTTP/2 stream.
func (h *Handler) serveHTTP2(w http.ResponseWriter, r *http.Request) {
	s, _ := streamPool.Get().(*stream)
	if s == nil {
		s = newStream(h)
	}
	s.h = h
	s.tls = h.tls
	s.route, s.wc, s.grpc, s.upgrade = nil, nil, false, false
	s.identity, s.identityOnly = 0, false // a pooled stream's connection
	defer func() {
		s.h, s.headers = nil, nil
		s.rreq.Method, s.rreq.Authority, s.rreq.Path = nil, nil, nil
		// The field list is kept for the next request, emptied so that it
		// holds on to nothing.
		clear(s.rreq.Headers)
		s.rreq.Headers = s.rreq.Headers[:0]
		if cap(s.rreq.Headers) > 256 {
			s.rreq.Headers = nil
		}
		streamPool.Put(s)
	}()
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		s.remote = ap
	}
	c, _ := r.Context().Value(connInfoKey{}).(*h2conn)
	if c != nil {
		s.setConn(c.info)
	}
	s.begin(true)
	defer s.finish()
	if len(h.logs) > 0 {
		defer func() { s.logHTTP(methods[r.Method], s.rreq.Path, true) }()
	}
	s.h2t.begin(w, r, h.cfg.StreamIdleTimeout, h.cfg.RequestTimeout)
	defer s.h2t.finish()
	if c != nil {
		c.add(&s.h2t)
		defer c.remove(&s.h2t)
	}
	if r.Method == "CONNECT" {
		// The guard passed a well-formed CONNECT; tunnels are not
		// enabled, so it is refused as an HTTP/1.1 upgrade would be.
		s.writeLocalH2(w, 403, nil, nil)
		return
	}
	s.viewH2Request(r, h.cfg.StripAnyHostPort)
	rr := &s.rreq
	rr.Scheme = schemeHTTP
	if h.tls {
		rr.Scheme = schemeHTTPS
	}
	s.headers = &rr.Headers
	if ct, ok := rr.Headers.Get("content-type"); ok && bytes.HasPrefix(ct, hdrContentTypeGRPC) {
		s.grpc = true
	}
	if s.process() == outLocal {
		s.writeLocalH2(w, s.status, s.body, s.localLocation())
		return
	}
	if f := s.route.Forward; f.Retry != nil || len(f.Mirrors) > 0 && s.sampleMirrors() {
		s.forwardTriesH2(s.h2t.context(), w, r)
		return
	}
	pool := s.host.Pool
	if !pool.Admit() {
		code, b := s.failBody(upOverflow)
		s.writeLocalH2(w, code, b, nil)
		return
	}
	defer pool.Done()
	pool.Begin()
	defer pool.End()
	if pool.HTTP2 {
		s.h2ToH2(s.h2t.context(), w, r)
	} else {
		s.h2ToH1(w, r)
	}
}

// writeLocalH2 sends a local reply on an HTTP/2 stream. A stream that
// timed out gets the timeout's reply instead: whatever failed, failed
// because the timer interrupted it.
func (s *stream) writeLocalH2(w http.ResponseWriter, code int, body, loc []byte) {
	if why := s.h2t.local(); why != expNone {
		code, body = s.timeoutReply(why)
		loc = nil
	} else if code == 0 {
		// No expiry set the reply the caller left to it: a forced close
		// (h2conn.abort) reset the stream, which gets no reply.
		panic(http.ErrAbortHandler)
	}
	code, body = s.mapLocal(code, body)
	s.respCode = code
	l := s.localHeaders(code, body, loc, time.Now())
	setH2Header(w.Header(), l)
	if s.grpc {
		w.WriteHeader(200)
		return
	}
	w.WriteHeader(code)
	if string(s.rreq.Method) != "HEAD" && len(body) > 0 {
		// The server sends the body after the handler returned, when the
		// client's window allows: the stream idle timeout bounds that
		// wait as the stream timer bounds those of forwarded bodies.
		if idle := s.h.cfg.StreamIdleTimeout; idle > 0 {
			if wd, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok {
				_ = wd.SetWriteDeadline(time.Now().Add(idle))
			}
		}
		_, _ = w.Write(body)
	}
}

// outgoingHeader converts the request header list for net/http.
func (s *stream) outgoingHeader() http.Header {
	hdr := make(http.Header, len(*s.headers))
	for _, f := range *s.headers {
		switch string(f.Name) {
		case "host", "content-length":
			continue
		}
		k := string(f.Name)
		hdr[k] = append(hdr[k], string(f.Value))
	}
	return hdr
}

// upstreamRequest builds the net/http request to an h2c endpoint.
func (s *stream) upstreamRequest(ctx context.Context, body io.Reader, length int64) *http.Request {
	req := (&http.Request{
		Method:        string(s.rreq.Method),
		URL:           upstreamURL(s.host.Pool.Scheme(), s.host.Addr, string(s.rreq.Authority), string(s.rreq.Path)),
		Host:          string(s.rreq.Authority),
		Header:        s.outgoingHeader(),
		ContentLength: length,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
	}).WithContext(ctx)
	if body == nil {
		req.Body = http.NoBody
	} else {
		req.Body = io.NopCloser(body)
	}
	return req
}

// upstreamURL is the URL of an HTTP/2 upstream request whose :path is
// path, byte for byte; scheme is its :scheme ("https" over TLS). The
// transport sends Opaque as the :path, except that Opaque starting with
// "//" reads as scheme-relative ("http://x/y") and the transport then
// strips "http://<authority>" from it: for such a path the authority goes
// in front, so the strip leaves exactly the path.
func upstreamURL(scheme, addr, authority, path string) *url.URL {
	u := &url.URL{Scheme: scheme, Host: addr, Opaque: path}
	if strings.HasPrefix(path, "//") {
		host := authority
		if host == "" {
			host = addr
		}
		if h, err := httpguts.PunycodeHostPort(host); err == nil {
			u.Opaque = "//" + h + path
		}
	}
	return u
}

func classify(err error) upstreamErr {
	var op *net.OpError
	switch {
	case errors.Is(err, errBadStatus):
		return upProtocol
	case isTimeout(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, errPerTryTimeout), errors.Is(err, errRouteTimeout):
		return upTimeout
	case errors.Is(err, upstream.ErrOverflow):
		return upOverflow
	case errors.As(err, &op) && op.Op == "dial":
		return upConnect
	case isRefusedStream(err):
		return upRefused
	}
	return upReset
}

func (s *stream) failBody(ue upstreamErr) (int, []byte) {
	s.flags |= ue.flag()
	if ue == upOverflow {
		s.details = detailsOverflow
	}
	code, b := failBody(ue)
	switch {
	case ue == upConnect:
		b = s.connectFailureBody()
	case code == 503:
		b = s.resetBody(b)
	}
	return code, b
}

func failBody(ue upstreamErr) (int, []byte) {
	switch ue {
	case upConnect:
		return 503, bodyConnectFailure
	case upTimeout:
		return 504, bodyTimeout
	case upProtocol:
		return 503, bodyProtocol
	case upOverflow:
		return 503, bodyOverflow
	case upRefused:
		return 503, bodyRefused
	}
	return 503, bodyReset
}

// responseList converts upstream net/http response headers to a list.
func responseList(hdr http.Header, dst header.List) header.List {
	for k, vs := range hdr {
		name := []byte(strings.ToLower(k))
		for _, v := range vs {
			dst = append(dst, header.Field{Name: name, Value: []byte(v)})
		}
	}
	return dst
}

func (s *stream) h2ToH2(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	var body io.Reader
	var rb *h2Body
	if r.Body != nil && r.Body != http.NoBody {
		rb = &h2Body{r: r.Body, t: &s.h2t}
		body = rb
		defer rb.detach()
	}
	// A request without a body is complete from its start: the route
	// timer runs from there. The server library does not tell whether a
	// body had all arrived: its end starts the timer (h2Attempt).
	complete := rb == nil
	out, ht := s.h2Attempt(ctx, s.routeEnd(s.start), complete, body, r.ContentLength)
	defer ht.release()
	out.Trailer = r.Trailer
	sent := time.Now()
	resp, err := roundTripH2(s.host.Pool, out)
	if !ht.started() {
		err = timedOut(resp, err)
	}
	if err != nil {
		if rb != nil && rb.failed.Load() {
			s.bodyFailed(w, r)
			return
		}
		code, b := s.failBody(s.classify(ht.failed(out.Context(), err)))
		s.writeLocalH2(w, code, b, nil)
		return
	}
	s.relayH2ToH2(w, resp, sent)
}

// relayH2ToH2 relays an HTTP/2 upstream response to an HTTP/2 stream and
// closes its body.
func (s *stream) relayH2ToH2(w http.ResponseWriter, resp *http.Response, sent time.Time) {
	defer resp.Body.Close()
	if !s.h2t.respond() {
		s.writeLocalH2(w, 0, nil, nil) // the stream timed out meanwhile
		return
	}
	s.respCode = resp.StatusCode
	s.reportStatus(resp.StatusCode)
	l := responseList(resp.Header, s.respFields[:0])
	l.Del("content-length")
	s.finishResponseHeaders(&l, false, time.Since(sent))
	hdr := w.Header()
	setH2Header(hdr, l)
	if resp.ContentLength >= 0 {
		hdr.Set("content-length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	if !copyFlush(w, resp.Body, &s.h2t) {
		panic(http.ErrAbortHandler)
	}
	for k, vs := range resp.Trailer {
		hdr[http.TrailerPrefix+k] = vs
	}
	s.noteGRPCStatus(resp.Header, resp.Trailer)
}

// bodyFailed ends a stream whose request body could not be read to its
// end. The upstream connection was discarded with the body incomplete, so
// the upstream never saw a complete request. When the client is still
// there the body itself was malformed — its DATA fell short of its
// content-length (the server resets a stream whose DATA exceeds it) — and
// the answer is 400 (RFC 9113 §8.1.1 allows a response to a malformed
// request); otherwise the stream is reset. (A body the stream timer cut
// off gets the timeout's reply, from writeLocalH2.)
func (s *stream) bodyFailed(w http.ResponseWriter, r *http.Request) {
	if r.Context().Err() != nil {
		panic(http.ErrAbortHandler)
	}
	s.writeLocalH2(w, 400, nil, nil)
}

// h2Body reads a downstream HTTP/2 request body for the upstream client
// (on the client's goroutine), notes its progress on the stream timer and
// remembers whether it failed. The client may read on after the handler
// returned and its stream (with the timer) was reused: detach ends the
// notes first.
type h2Body struct {
	r      io.Reader
	failed atomic.Bool
	mu     sync.Mutex
	t      *h2Timer
}

func (b *h2Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.failed.Store(true)
	}
	b.mu.Lock()
	if b.t != nil {
		switch {
		case err == io.EOF:
			b.t.requestDone()
		case n > 0:
			b.t.touch()
		}
	}
	b.mu.Unlock()
	return n, err
}

func (b *h2Body) detach() {
	b.mu.Lock()
	b.t = nil
	b.mu.Unlock()
}

// bodyEnder is a body that knows, before the read that would return
// io.EOF, that it has ended.
type bodyEnder interface{ ended() bool }

// copyFlush copies src to an HTTP/2 response, flushing every read so
// streaming (gRPC) bodies are not held back, and notes each write on the
// stream timer t. It reports success.
//
// The read that ends a body the source can tell has ended (bodyEnder) is
// not flushed: the handler returns right after, and the server sends the
// buffered bytes with END_STREAM in one DATA frame, together with the
// response HEADERS when they are still unsent. An explicit flush would
// cost a second DATA frame (empty, with END_STREAM), a round trip between
// the handler and the server's goroutine, and a goroutine of the server's
// for each of its two flushes.
func copyFlush(w http.ResponseWriter, src io.Reader, t *h2Timer) bool {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	fl, _ := w.(http.Flusher)
	end, _ := src.(bodyEnder)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false
			}
			if fl != nil && (end == nil || !end.ended()) {
				fl.Flush()
			}
			t.touch()
		}
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// h2ToH1 forwards an HTTP/2 stream over a pooled HTTP/1.1 connection.
// Only a stream that finds no idle connection waits (to dial, or for a
// connection at max_connections), under the stream's context.
func (s *stream) h2ToH1(w http.ResponseWriter, r *http.Request) {
	pool := s.host.Pool
	now := time.Now()
	uc := pool.GetIdle(now)
	if uc == nil {
		// The stream's context is made only for a wait.
		var ue upstreamErr
		if uc, _, ue = s.getConn(s.h2t.context(), pool, now, s.routeEnd(s.start)); ue != upOK {
			code, b := s.failBody(ue)
			s.writeLocalH2(w, code, b, nil)
			return
		}
	}
	if !s.h2t.attach(uc) {
		uc.Discard()
		s.writeLocalH2(w, 0, nil, nil)
		return
	}
	// A request with "content-length: 0" may still be open: its body is
	// read (to its END_STREAM) so the stream timer knows when it ended.
	hasBody := r.Body != nil && r.Body != http.NoBody && (r.ContentLength != 0 || !s.h2t.reqDone.Load())
	chunked := hasBody && r.ContentLength < 0
	length := int64(0)
	if hasBody {
		length = r.ContentLength
	}
	out := appendH1Head(uc.Out[:0], s.rreq.Method, s.rreq.Path, s.rreq.Authority, *s.headers, length)
	ok := true
	if hasBody {
		if _, err := uc.Write(out); err != nil {
			ok = false
		}
		out = out[:0]
		bp := copyBufPool.Get().(*[]byte)
		buf := *bp
		for ok {
			n, rerr := r.Body.Read(buf)
			if n > 0 {
				s.h2t.touch()
				chunk := buf[:n]
				if chunked {
					out = http1.AppendChunk(out[:0], chunk)
					chunk = out
				}
				if _, err := uc.Write(chunk); err != nil {
					ok = false
				}
			}
			if rerr == io.EOF {
				s.h2t.requestDone()
				break
			}
			if rerr != nil {
				s.h2t.detach()
				uc.Discard()
				copyBufPool.Put(bp)
				s.bodyFailed(w, r)
				return
			}
		}
		copyBufPool.Put(bp)
		if ok && chunked {
			if _, err := uc.Write([]byte(http1.LastChunk)); err != nil {
				ok = false
			}
		}
		out = out[:0]
	}
	// The route timeout runs from the request's end: its start for a
	// request without a body (also while a connection was dialed), after
	// the body for one with.
	sent := s.start
	if hasBody {
		sent = time.Now()
	}
	ue := upReset
	if ok {
		if len(out) > 0 {
			if _, err := uc.Write(out); err != nil {
				ok = false
			}
		}
		if ok {
			begin := time.Now()
			ue = readHead(uc, string(s.rreq.Method) == "HEAD", begin, s.headWait(sent, begin))
		}
	}
	uc.Out = out[:0]
	if ue != upOK {
		s.h2t.detach()
		uc.Discard()
		code, b := s.failBody(ue)
		s.writeLocalH2(w, code, b, nil)
		return
	}
	// The response started: only the route timeout bounds the body.
	if t, ok := uc.Deadline(sent, s.timeout); ok {
		_ = uc.SetReadDeadline(t)
	}
	s.relayH1ToH2(w, uc, sent)
}

// relayH1ToH2 relays the response head parsed in uc.Resp, and its body, to
// an HTTP/2 stream, then pools or discards uc.
func (s *stream) relayH1ToH2(w http.ResponseWriter, uc *upstream.Conn, sent time.Time) {
	if !s.h2t.attach(uc) || !s.h2t.respond() {
		// The stream timed out meanwhile: writeLocalH2 says so.
		s.h2t.detach()
		uc.Discard()
		s.writeLocalH2(w, 0, nil, nil)
		return
	}
	resp := &uc.Resp
	s.respCode = resp.Status
	s.reportStatus(resp.Status)
	l := resp.Headers
	s.finishResponseHeaders(&l, false, time.Since(sent))
	setH2Header(w.Header(), l)
	if resp.Framing == http1.Length {
		// The upstream's content-length is forwarded under its
		// lower-case name. A body that ends before the handler returns
		// is not flushed (copyFlush), and the server library adds a
		// content-length of its own to a response it sends whole unless
		// its canonical key is present: nil suppresses that second one.
		w.Header()["Content-Length"] = nil
	}
	status := resp.Status
	uc.R += resp.HeadLen
	framing := resp.Framing
	reusable := !resp.Close && framing != http1.UntilClose
	w.WriteHeader(status)
	// The body reader lives in the stream (one allocation fewer per
	// response); it is done with before the handler returns.
	body := &s.respRd
	*body = bodyReader{src: upSource{uc}, framing: framing, remaining: resp.ContentLength}
	defer func() { *body = bodyReader{} }()
	if !copyFlush(w, body, &s.h2t) {
		s.h2t.detach()
		uc.Discard()
		panic(http.ErrAbortHandler)
	}
	if s.h2t.detach() && reusable && body.complete() && uc.R == uc.W {
		uc.Pool().Put(uc)
	} else {
		uc.Discard()
	}
}

// appendH1Head appends the HTTP/1.1 head of a request that arrived over
// HTTP/2 (and passed h2Check): the request line, host from the authority,
// the fields but host and content-length, and the body framing — length
// bytes, chunked when length is negative (HTTP/2 needs no declared length),
// none when zero.
func appendH1Head(out, method, path, authority []byte, l header.List, length int64) []byte {
	out = http1.AppendRequestLine(out, method, path)
	out = http1.AppendField(out, hHost, authority)
	for _, f := range l {
		switch string(f.Name) {
		case "host", "content-length":
			continue
		}
		out = http1.AppendField(out, f.Name, f.Value)
	}
	switch {
	case length < 0:
		out = append(out, "transfer-encoding: chunked\r\n"...)
	case length > 0:
		out = append(out, "content-length: "...)
		out = strconv.AppendInt(out, length, 10)
		out = append(out, '\r', '\n')
	}
	return append(out, '\r', '\n')
}

// forwardH2 forwards an HTTP/1.1 request to an h2c endpoint.
func (hc *h1conn) forwardH2(keep bool) bool {
	s := hc.s
	req := &hc.req
	pool := s.host.Pool
	if !pool.Admit() {
		hc.r += req.HeadLen
		return hc.failUpstream(upOverflow, keep && hc.skipBody())
	}
	defer pool.Done()
	pool.Begin()
	defer pool.End()
	head := string(req.Method) == "HEAD"
	hc.r += req.HeadLen
	// A request whose body came with its head is complete from its
	// start: the route timer runs from there. Otherwise the body's end
	// starts it (h2Attempt).
	complete := req.Framing == http1.NoBody || req.Framing == http1.Length && int64(hc.w-hc.r) >= req.ContentLength
	if req.Expect100 && req.Framing != http1.NoBody && hc.r == hc.w {
		if _, err := hc.write(continue100); err != nil {
			return false
		}
	}
	var body *bodyReader
	length := int64(0)
	var rd io.Reader
	switch req.Framing {
	case http1.Length:
		body = &bodyReader{src: hc, framing: http1.Length, remaining: req.ContentLength}
		length, rd = req.ContentLength, body
	case http1.Chunked:
		body = &bodyReader{src: hc, framing: http1.Chunked}
		length, rd = -1, body
	}
	out, ht := s.h2Attempt(hc.upstreamCtx(), s.routeEnd(s.start), complete, rd, length)
	defer ht.release()
	sent := time.Now()
	resp, err := roundTripH2(pool, out)
	if !ht.started() {
		err = timedOut(resp, err)
	}
	bodyDone := body == nil || body.complete()
	if err != nil {
		return hc.failUpstream(s.classify(ht.failed(out.Context(), err)), keep && bodyDone)
	}
	return hc.relayH2(resp, keep && bodyDone, head, sent)
}

// relayH2 relays an HTTP/2 upstream response to the HTTP/1.1 client and
// closes its body. keep says the connection may serve another request.
func (hc *h1conn) relayH2(resp *http.Response, keep, head bool, sent time.Time) bool {
	s := hc.s
	defer resp.Body.Close()
	s.respCode = resp.StatusCode
	s.reportStatus(resp.StatusCode)
	l := responseList(resp.Header, s.respFields[:0])
	l.Del("content-length")
	s.finishResponseHeaders(&l, false, time.Since(sent))
	o := http1.AppendStatusLine(hc.out[:0], resp.StatusCode)
	o = http1.AppendFields(o, l)
	chunked := false
	switch {
	case head || resp.StatusCode == 204 || resp.StatusCode == 304:
	case resp.ContentLength >= 0:
		o = append(o, "content-length: "...)
		o = strconv.AppendInt(o, resp.ContentLength, 10)
		o = append(o, '\r', '\n')
	default:
		chunked = true
		o = append(o, "transfer-encoding: chunked\r\n"...)
	}
	keep = keep && !hc.h.draining.Load()
	if !keep {
		o = append(o, "connection: close\r\n"...)
	}
	o = append(o, '\r', '\n')
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for !head {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if chunked {
				o = http1.AppendChunk(o, buf[:n])
			} else {
				o = append(o, buf[:n]...)
			}
			if _, err := hc.write(o); err != nil {
				hc.out = o[:0]
				return false
			}
			o = o[:0]
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			hc.out = o[:0]
			return false
		}
	}
	if chunked {
		o = append(o, http1.LastChunk...)
	}
	hc.out = o
	if len(o) > 0 {
		if _, err := hc.write(o); err != nil {
			return false
		}
	}
	return keep
}

var _ = upstream.ReadBufferSize
