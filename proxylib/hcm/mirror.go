package hcm

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Request mirroring (route request_mirror_policies), as Envoy shadows:
//
//   - Each policy is sampled with one random draw per request (Envoy's
//     stable random: policies with the same fraction pick the same
//     requests). A sampled request goes, once its body is complete, as a
//     copy to a host of the policy's cluster: same method, path and
//     headers as the request sent upstream (after the route's edits), the
//     authority's host suffixed "-shadow" (before any port) unless the
//     policy disables it or rewrites the host.
//   - Copies are fire and forget: each runs on its own goroutine, its
//     response is read and discarded, and nothing about it reaches the
//     client or delays the main request. It is bounded by the route
//     timeout (15 s when the route disables it: a copy must end) and by
//     the mirror cluster's circuit breakers (a copy that overflows is
//     dropped).
//   - The body comes from the request's replay record (replay.go): a body
//     over the buffer limit is not mirrored (retry_or_shadow_abandoned on
//     the route's cluster). A request answered before its body was read
//     (the first attempt failed before sending it) is not mirrored
//     either. Upgrade requests are never mirrored.

// sampleMirrors draws the request's mirror decisions into s.mirrorOn and
// reports whether any policy mirrors it.
func (s *stream) sampleMirrors() bool {
	ms := s.route.Forward.Mirrors
	if len(ms) == 0 || s.upgrade {
		return false
	}
	x := s.rnd.Uint64()
	s.mirrorOn = s.mirrorOn[:0]
	any := false
	for i := range ms {
		m := &ms[i]
		on := m.Denominator == 0 || x%uint64(m.Denominator) < uint64(m.Numerator)
		s.mirrorOn = append(s.mirrorOn, on)
		any = any || on
	}
	return any
}

// mirrorCopy is one request as its mirrors send it: built on the request's
// goroutine, immutable afterwards, shared by the mirrors' goroutines.
type mirrorCopy struct {
	method, path string
	fields       header.List
	head         bool
	h2           bool // the downstream spoke HTTP/2 (use_downstream_protocol_config)
	dst          netip.AddrPort
	timeout      time.Duration
	targets      []mirrorTarget
	rt           *Runtime
}

type mirrorTarget struct {
	cluster   *upstream.Cluster
	authority string
}

// startMirrors arranges the sampled mirrors of the request: at once when
// it has no body, else when rp saw the whole body within the limit.
func (s *stream) startMirrors(rp *replay) {
	ms := s.route.Forward.Mirrors
	m := &mirrorCopy{method: string(s.rreq.Method), path: string(s.rreq.Path), head: string(s.rreq.Method) == "HEAD",
		h2: s.h2, dst: s.dst, timeout: cmp.Or(s.timeout, resource.DefaultRouteTimeout), rt: s.h.rt}
	for i := range ms {
		if i >= len(s.mirrorOn) || !s.mirrorOn[i] {
			continue
		}
		c := s.routing.Clusters[ms[i].Cluster]
		if c == nil {
			continue // Envoy skips a mirror to an unknown cluster
		}
		auth := string(s.rreq.Authority)
		switch {
		case ms[i].HostRewrite != "":
			auth = ms[i].HostRewrite
		case ms[i].Suffix:
			auth = shadowHost(auth)
		}
		m.targets = append(m.targets, mirrorTarget{cluster: c, authority: auth})
	}
	if len(m.targets) == 0 {
		return
	}
	m.fields = make(header.List, 0, len(*s.headers))
	for _, f := range *s.headers {
		switch string(f.Name) {
		case "host", "content-length", "transfer-encoding":
			continue
		}
		m.fields = append(m.fields, header.Field{Name: bytes.Clone(f.Name), Value: bytes.Clone(f.Value)})
	}
	if rp == nil {
		m.launch(nil)
		return
	}
	rp.onDone = func(body []byte) { m.launch(bytes.Clone(body)) }
}

// shadowHost appends "-shadow" to the host of an authority, before its
// port if it has one (Envoy's shadow host).
func shadowHost(auth string) string {
	i := len(auth)
	if c := bytes.LastIndexByte([]byte(auth), ':'); c >= 0 && c > bytes.LastIndexByte([]byte(auth), ']') {
		i = c
	}
	return auth[:i] + "-shadow" + auth[i:]
}

// launch sends the copy to every target, each on its own goroutine.
func (m *mirrorCopy) launch(body []byte) {
	for _, t := range m.targets {
		go m.send(t, body)
	}
}

// send delivers the copy to one host of the target's cluster and discards
// the response.
func (m *mirrorCopy) send(t mirrorTarget, body []byte) {
	c := t.cluster
	var h *upstream.Host
	if c.IsOriginalDst() {
		h = c.PickOriginal(m.dst, m.h2, netip.Addr{}, 0)
	} else {
		h = c.Pick(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	}
	if h == nil {
		return
	}
	pool := h.Pool
	if !pool.Admit() {
		return
	}
	defer pool.Done()
	pool.Begin()
	defer pool.End()
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	var err error
	if pool.HTTP2 {
		err = m.sendH2(ctx, pool, h.Addr, t.authority, body)
	} else {
		err = m.sendH1(ctx, pool, t.authority, body)
	}
	if err != nil {
		m.rt.Logger.Debug("mirroring request", "cluster", c.Config.Name, "host", h.Addr, "error", err)
	}
}

// mirrorError says why a mirror's exchange did not complete.
type mirrorError string

func (e mirrorError) Error() string { return string(e) }

func (m *mirrorCopy) sendH1(ctx context.Context, pool *upstream.Pool, authority string, body []byte) error {
	uc, _, err := pool.Get(ctx, m.timeout)
	if err != nil {
		return err
	}
	out := http1.AppendRequestLine(uc.Out[:0], []byte(m.method), []byte(m.path))
	out = http1.AppendField(out, hHost, []byte(authority))
	for _, f := range m.fields {
		out = http1.AppendField(out, f.Name, f.Value)
	}
	if len(body) > 0 {
		out = append(out, "content-length: "...)
		out = strconv.AppendInt(out, int64(len(body)), 10)
		out = append(out, '\r', '\n')
	}
	out = append(out, '\r', '\n')
	uc.Out = out[:0]
	if _, err := uc.Write(out); err != nil {
		uc.Discard()
		return err
	}
	if len(body) > 0 {
		if _, err := uc.Write(body); err != nil {
			uc.Discard()
			return err
		}
	}
	if ue := readHead(uc, m.head, time.Now(), m.timeout); ue != upOK {
		uc.Discard()
		return mirrorError("no response head")
	}
	resp := &uc.Resp
	reusable := !resp.Close && resp.Framing != http1.UntilClose && resp.Status != 101
	uc.R += resp.HeadLen
	br := &bodyReader{src: upSource{uc}, framing: resp.Framing, remaining: resp.ContentLength}
	if _, err := io.Copy(io.Discard, br); err != nil || !br.complete() {
		uc.Discard()
		return mirrorError("response body incomplete")
	}
	if reusable && uc.R == uc.W {
		pool.Put(uc)
	} else {
		uc.Discard()
	}
	return nil
}

func (m *mirrorCopy) sendH2(ctx context.Context, pool *upstream.Pool, addr, authority string, body []byte) error {
	hdr := make(http.Header, len(m.fields))
	for _, f := range m.fields {
		hdr[string(f.Name)] = append(hdr[string(f.Name)], string(f.Value))
	}
	req := (&http.Request{Method: m.method, URL: upstreamURL(pool.Scheme(), addr, authority, m.path), Host: authority,
		Header: hdr, ContentLength: int64(len(body)), Body: http.NoBody, Proto: "HTTP/2.0", ProtoMajor: 2}).WithContext(ctx)
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := roundTripH2(pool, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
