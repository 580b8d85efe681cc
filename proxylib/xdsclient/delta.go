package xdsclient

import (
	"context"
	"fmt"
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// deltaSession is the protocol state of one incremental stream: the names
// subscribed per named type. Like sotwSession it turns every response into
// the requests that answer it.
type deltaSession struct {
	c          *Client
	subscribed map[string][]string
}

func (c *Client) newDelta() *deltaSession {
	for _, t := range wildcardTypes {
		if c.resVers[t] == nil {
			c.resVers[t] = map[string]string{}
		}
	}
	return &deltaSession{c: c, subscribed: map[string][]string{}}
}

// start returns the first requests of a stream: the wildcard
// subscriptions and the named ones the Handler already needs, with the
// resource versions accepted so far.
func (s *deltaSession) start() []*discoveryv3.DeltaDiscoveryRequest {
	reqs := make([]*discoveryv3.DeltaDiscoveryRequest, 0, len(wildcardTypes)+len(namedTypes))
	for _, t := range wildcardTypes {
		reqs = append(reqs, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, InitialResourceVersions: s.c.resVers[t]})
	}
	return s.resubscribe(reqs)
}

// resubscribe appends a request for every named type whose names changed.
func (s *deltaSession) resubscribe(reqs []*discoveryv3.DeltaDiscoveryRequest) []*discoveryv3.DeltaDiscoveryRequest {
	c := s.c
	for _, t := range namedTypes {
		names := c.h.Names(t)
		old := s.subscribed[t]
		var add, drop []string
		for _, n := range names {
			if !slices.Contains(old, n) {
				add = append(add, n)
			}
		}
		for _, n := range old {
			if !slices.Contains(names, n) {
				drop = append(drop, n)
			}
		}
		if len(add) == 0 && len(drop) == 0 {
			continue
		}
		_, known := s.subscribed[t]
		s.subscribed[t] = names
		if c.resVers[t] == nil {
			c.resVers[t] = map[string]string{}
		}
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop}
		if !known {
			req.InitialResourceVersions = c.resVers[t]
		}
		reqs = append(reqs, req)
	}
	return reqs
}

// handle applies resp and returns its ACK or NACK, followed by the
// subscription changes the applied configuration calls for.
func (s *deltaSession) handle(resp *discoveryv3.DeltaDiscoveryResponse) []*discoveryv3.DeltaDiscoveryRequest {
	c := s.c
	t := resp.GetTypeUrl()
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	if !slices.Contains(wildcardTypes, t) && !slices.Contains(namedTypes, t) {
		req.ErrorDetail = errorDetail(fmt.Errorf("resource type %q not supported by nodemesh-proxy", t))
		return []*discoveryv3.DeltaDiscoveryRequest{req}
	}
	// A named type may arrive before this stream subscribed to it; it is
	// applied like the state-of-the-world client applies it.
	vers := c.resVers[t]
	if vers == nil {
		vers = map[string]string{}
		c.resVers[t] = vers
	}
	anys := make([]*anypb.Any, 0, len(resp.GetResources()))
	removed := slices.Clone(resp.GetRemovedResources())
	for _, r := range resp.GetResources() {
		if r.GetResource() == nil {
			removed = append(removed, r.GetName())
			continue
		}
		anys = append(anys, r.GetResource())
	}
	if uerr := c.h.Update(t, resp.GetSystemVersionInfo(), anys, removed, false); uerr != nil {
		req.ErrorDetail = errorDetail(uerr)
		c.logger.Warn("NACK", "type", t, "nonce", resp.GetNonce(), "error", uerr)
		c.note(func(s *Stats) { s.NACKs++ })
	} else {
		for _, r := range resp.GetResources() {
			if r.GetResource() != nil {
				vers[r.GetName()] = r.GetVersion()
			}
		}
		for _, n := range removed {
			delete(vers, n)
		}
		c.note(func(s *Stats) { s.ACKs++; s.LastACK = time.Now() })
	}
	return s.resubscribe([]*discoveryv3.DeltaDiscoveryRequest{req})
}

func (c *Client) runDelta(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ads.DeltaAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("opening delta ADS stream: %w", err)
	}
	c.note(func(s *Stats) { s.Connected = true; s.Streams++ })
	return serve(stream, c.newDelta(), c.node)
}
