package adsclient

import (
	"context"
	"fmt"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
)

// runDelta speaks incremental ADS: clusters and listeners by wildcard,
// endpoints, routes and secrets by explicit (un)subscription.
func (c *Client) runDelta(ctx context.Context) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("opening delta ADS stream: %w", err)
	}
	first := true
	send := func(req *discoveryv3.DeltaDiscoveryRequest) error {
		if first {
			req.Node = nodeOf(c.opts)
			first = false
		}
		return stream.Send(req)
	}

	c.mu.Lock()
	resume := c.resume
	var initial []*discoveryv3.DeltaDiscoveryRequest
	for _, t := range []string{ClusterType, ListenerType, EndpointType, RouteType, SecretType} {
		st := c.types[t]
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}
		if t == EndpointType || t == RouteType || t == SecretType {
			if !resume || len(st.names) == 0 {
				continue
			}
			req.ResourceNamesSubscribe = slices.Clone(st.names)
		}
		if resume {
			req.InitialResourceVersions = map[string]string{}
			for n, v := range st.versions {
				req.InitialResourceVersions[n] = v
			}
		}
		initial = append(initial, req)
	}
	c.mu.Unlock()
	for _, req := range initial {
		if err := send(req); err != nil {
			return fmt.Errorf("subscribing: %w", err)
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("receiving: %w", err)
		}
		typeURL := resp.GetTypeUrl()
		res := make(map[string]proto.Message, len(resp.GetResources()))
		versions := make(map[string]string, len(resp.GetResources()))
		for _, r := range resp.GetResources() {
			m, derr := r.GetResource().UnmarshalNew()
			if derr != nil {
				err = fmt.Errorf("decoding %s: %w", r.GetName(), derr)
				break
			}
			res[r.GetName()] = m
			versions[r.GetName()] = r.GetVersion()
		}
		if err == nil && c.opts.Reject != nil {
			err = c.opts.Reject(typeURL, res)
		}
		c.mu.Lock()
		st := c.types[typeURL]
		if st == nil {
			c.mu.Unlock()
			return fmt.Errorf("unexpected type %s", typeURL)
		}
		c.events = append(c.events, Event{
			TypeURL: typeURL, Version: resp.GetSystemVersionInfo(), Nonce: resp.GetNonce(),
			Names: sortedNames(res), Removed: slices.Sorted(slices.Values(resp.GetRemovedResources())), Rejected: err != nil,
		})
		if err != nil {
			c.notifyLocked()
			c.mu.Unlock()
			if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: resp.GetNonce(), ErrorDetail: errorDetail(err)}); err != nil {
				return fmt.Errorf("sending NACK: %w", err)
			}
			continue
		}
		prevSecrets := copyMap(c.types[SecretType].resources)
		for n, m := range res {
			st.resources[n] = m
			st.versions[n] = versions[n]
		}
		for _, n := range resp.GetRemovedResources() {
			delete(st.resources, n)
			delete(st.versions, n)
		}
		st.version = resp.GetSystemVersionInfo()
		c.checkLocked(typeURL+" "+st.version, prevSecrets)
		var follow []*discoveryv3.DeltaDiscoveryRequest
		for _, dep := range dependents(typeURL) {
			want := c.wantedLocked(dep)
			ds := c.types[dep]
			var sub, unsub []string
			for _, n := range want {
				if !slices.Contains(ds.names, n) {
					sub = append(sub, n)
				}
			}
			for _, n := range ds.names {
				if !slices.Contains(want, n) {
					unsub = append(unsub, n)
					delete(ds.resources, n)
					delete(ds.versions, n)
				}
			}
			ds.names = want
			if len(sub)+len(unsub) > 0 {
				follow = append(follow, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: dep, ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub})
			}
		}
		c.notifyLocked()
		c.mu.Unlock()
		for _, req := range follow {
			if err := send(req); err != nil {
				return fmt.Errorf("subscribing: %w", err)
			}
		}
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: resp.GetNonce()}); err != nil {
			return fmt.Errorf("sending ACK: %w", err)
		}
	}
}
