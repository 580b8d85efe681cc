package xdsclient

import (
	"context"
	"fmt"
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// sotwState is what one state-of-the-world stream knows of a type.
type sotwState struct {
	nonce string
	names []string
	sent  bool
}

// sotwSession is the protocol state of one state-of-the-world stream. It
// turns every response into the requests that answer it, applying the
// response through the Handler; the stream loop only moves messages, so
// tests drive the same code without a connection.
type sotwSession struct {
	c  *Client
	st map[string]*sotwState
}

func (c *Client) newSotW() *sotwSession {
	s := &sotwSession{c: c, st: map[string]*sotwState{}}
	for _, t := range wildcardTypes {
		s.st[t] = &sotwState{sent: true}
	}
	for _, t := range namedTypes {
		s.st[t] = &sotwState{}
	}
	return s
}

// start returns the first requests of a stream: the wildcard
// subscriptions, then the named ones the Handler already needs, each with
// the version last accepted (so the server can skip what is unchanged).
func (s *sotwSession) start() []*discoveryv3.DiscoveryRequest {
	reqs := make([]*discoveryv3.DiscoveryRequest, 0, len(wildcardTypes)+len(namedTypes))
	for _, t := range wildcardTypes {
		reqs = append(reqs, &discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: s.c.versions[t]})
	}
	return s.resubscribe(reqs)
}

// resubscribe appends a request for every named type whose names changed.
func (s *sotwSession) resubscribe(reqs []*discoveryv3.DiscoveryRequest) []*discoveryv3.DiscoveryRequest {
	for _, t := range namedTypes {
		st := s.st[t]
		names := s.c.h.Names(t)
		if len(names) == 0 || (st.sent && slices.Equal(names, st.names)) {
			continue
		}
		st.names, st.sent = names, true
		reqs = append(reqs, &discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: s.c.versions[t],
			ResponseNonce: st.nonce, ResourceNames: names})
	}
	return reqs
}

// handle applies resp and returns its ACK or NACK, followed by the
// subscription changes the applied configuration calls for.
func (s *sotwSession) handle(resp *discoveryv3.DiscoveryResponse) []*discoveryv3.DiscoveryRequest {
	c := s.c
	t := resp.GetTypeUrl()
	st := s.st[t]
	if st == nil {
		// Not subscribed: NACK so the server learns.
		return []*discoveryv3.DiscoveryRequest{{TypeUrl: t, ResponseNonce: resp.GetNonce(),
			ErrorDetail: errorDetail(fmt.Errorf("resource type %q not supported by nodemesh-proxy", t))}}
	}
	st.nonce = resp.GetNonce()
	full := slices.Contains(wildcardTypes, t)
	uerr := c.h.Update(t, resp.GetVersionInfo(), resp.GetResources(), nil, full)
	req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResponseNonce: st.nonce, ResourceNames: st.names}
	if uerr != nil {
		req.VersionInfo = c.versions[t]
		req.ErrorDetail = errorDetail(uerr)
		c.logger.Warn("NACK", "type", t, "version", resp.GetVersionInfo(), "error", uerr)
		c.note(func(s *Stats) { s.NACKs++ })
	} else {
		c.versions[t] = resp.GetVersionInfo()
		req.VersionInfo = resp.GetVersionInfo()
		c.note(func(s *Stats) { s.ACKs++; s.LastACK = time.Now() })
	}
	return s.resubscribe([]*discoveryv3.DiscoveryRequest{req})
}

func (c *Client) runSotW(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ads.StreamAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("opening ADS stream: %w", err)
	}
	c.note(func(s *Stats) { s.Connected = true; s.Streams++ })
	return serve(stream, c.newSotW(), c.node)
}
