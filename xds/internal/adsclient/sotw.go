package adsclient

import (
	"context"
	"fmt"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
)

// runSotW speaks state-of-the-world ADS: one request per type carrying the
// accepted version, the last nonce and (for named types) the names.
func (c *Client) runSotW(ctx context.Context) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.conn).StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("opening ADS stream: %w", err)
	}
	first := true
	send := func(typeURL string, nack error) error {
		c.mu.Lock()
		st := c.types[typeURL]
		req := &discoveryv3.DiscoveryRequest{
			TypeUrl:       typeURL,
			VersionInfo:   st.version,
			ResponseNonce: st.nonce,
			ResourceNames: slices.Clone(st.names),
		}
		c.mu.Unlock()
		if first {
			req.Node = nodeOf(c.opts)
			first = false
		}
		if nack != nil {
			req.ErrorDetail = errorDetail(nack)
		}
		return stream.Send(req)
	}

	c.mu.Lock()
	resume := c.resume
	c.mu.Unlock()

	initial := []string{ClusterType, ListenerType}
	c.mu.Lock()
	for _, t := range []string{EndpointType, RouteType, SecretType} {
		// An empty name list would be a wildcard: only resume named
		// subscriptions that name something.
		if resume && len(c.types[t].names) > 0 {
			initial = append(initial, t)
		}
	}
	for _, st := range c.types {
		st.nonce = "" // a new stream starts without nonces
	}
	c.mu.Unlock()
	for _, t := range initial {
		if err := send(t, nil); err != nil {
			return fmt.Errorf("subscribing: %w", err)
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("receiving: %w", err)
		}
		typeURL := resp.GetTypeUrl()
		res, err := decode(resp.GetResources())
		if err == nil && c.opts.Reject != nil {
			err = c.opts.Reject(typeURL, res)
		}
		c.mu.Lock()
		st := c.types[typeURL]
		if st == nil {
			c.mu.Unlock()
			return fmt.Errorf("unexpected type %s", typeURL)
		}
		ev := Event{TypeURL: typeURL, Version: resp.GetVersionInfo(), Nonce: resp.GetNonce(), Names: sortedNames(res), Rejected: err != nil}
		c.events = append(c.events, ev)
		st.nonce = resp.GetNonce()
		if err != nil {
			c.notifyLocked()
			c.mu.Unlock()
			if err := send(typeURL, err); err != nil {
				return fmt.Errorf("sending NACK: %w", err)
			}
			continue
		}
		prevSecrets := copyMap(c.types[SecretType].resources)
		st.version = resp.GetVersionInfo()
		st.resources = res
		c.checkLocked(typeURL+" "+st.version, prevSecrets)
		var follow []string
		for _, dep := range dependents(typeURL) {
			want := c.wantedLocked(dep)
			ds := c.types[dep]
			if !slices.Equal(want, ds.names) {
				ds.names = want
				// Names no longer wanted are dropped at once, as a proxy
				// drops clusters' endpoints and listeners' routes it no
				// longer has.
				for n := range ds.resources {
					if !slices.Contains(want, n) {
						delete(ds.resources, n)
					}
				}
				follow = append(follow, dep)
			}
		}
		c.notifyLocked()
		c.mu.Unlock()
		for _, dep := range follow {
			if err := send(dep, nil); err != nil {
				return fmt.Errorf("subscribing: %w", err)
			}
		}
		if err := send(typeURL, nil); err != nil {
			return fmt.Errorf("sending ACK: %w", err)
		}
	}
}

// dependents are the types whose subscriptions follow a type's content.
func dependents(typeURL string) []string {
	switch typeURL {
	case ClusterType:
		return []string{EndpointType}
	case ListenerType:
		return []string{RouteType, SecretType}
	}
	return nil
}

func copyMap(m map[string]proto.Message) map[string]proto.Message {
	out := make(map[string]proto.Message, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
