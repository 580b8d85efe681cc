package spire

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	delegatedidentityv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/agent/delegatedidentity/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Run connects to the SPIRE agent and keeps the SVID and bundle
// subscriptions open until ctx ends, reconnecting with backoff whenever a
// stream ends. It returns nil when ctx ends, or an error if it cannot
// start (it may be called once).
func (s *Source) Run(ctx context.Context) error {
	if err := s.setRunning(true); err != nil {
		return err
	}
	defer s.setRunning(false)
	conn, err := dialUnix(s.socket, s.maxMsg)
	if err != nil {
		return fmt.Errorf("running SPIRE source: %w", err)
	}
	defer conn.Close()
	c := delegatedidentityv1.NewDelegatedIdentityClient(conn)
	var wg sync.WaitGroup
	wg.Go(func() { s.keep(ctx, false, func(ctx context.Context) (bool, error) { return s.watchSVIDs(ctx, c) }) })
	wg.Go(func() { s.keep(ctx, true, func(ctx context.Context) (bool, error) { return s.watchBundles(ctx, c) }) })
	wg.Wait()
	return nil
}

// dialUnix prepares a gRPC client for a Unix socket (absolute path). The
// connection is made lazily and re-made by gRPC after failures; streams
// opened on it fail fast while it cannot connect.
func dialUnix(path string, maxMsg int) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg)))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
	}
	return conn, nil
}

// keep runs one subscription over and over until ctx ends.
func (s *Source) keep(ctx context.Context, bundle bool, watch func(context.Context) (bool, error)) {
	name := "X.509-SVIDs"
	if bundle {
		name = "X.509 bundles"
	}
	delay := s.backoffMin
	for {
		delivered, err := watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if delivered {
			delay = s.backoffMin
		}
		if err == nil {
			err = errors.New("stream ended")
		}
		var refused error
		if st := grpcStatus(err); st.Code() == codes.PermissionDenied {
			refused = fmt.Errorf("%w: %s: %s (is this process's SPIFFE ID among the agent's authorized_delegates, and does a registration entry match it?)", ErrRefused, st.Code(), st.Message())
			s.log.Error("SPIRE agent refused the subscription", "stream", name, "socket", s.socket, "error", refused)
		} else {
			s.log.Warn("SPIRE agent stream ended; reconnecting", "stream", name, "socket", s.socket, "in", delay, "error", err)
		}
		s.streamDown(bundle, err, refused)
		t := time.NewTimer(jitter(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, s.backoffMax)
	}
}

// grpcStatus finds the gRPC status inside a wrapped error (codes.Unknown
// when there is none), keeping the server's own message.
func grpcStatus(err error) *status.Status {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus()
	}
	return status.New(codes.Unknown, err.Error())
}

// jitter spreads d by ±20%, so agents restarted together do not
// reconnect in lockstep.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// watchSVIDs holds one SubscribeToX509SVIDs stream; it reports whether
// any message arrived.
func (s *Source) watchSVIDs(ctx context.Context, c delegatedidentityv1.DelegatedIdentityClient) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.SubscribeToX509SVIDs(ctx, &delegatedidentityv1.SubscribeToX509SVIDsRequest{Selectors: []*types.Selector{s.selector}})
	if err != nil {
		return false, fmt.Errorf("subscribing to X.509-SVIDs: %w", err)
	}
	delivered := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			return delivered, fmt.Errorf("receiving X.509-SVIDs: %w", err)
		}
		delivered = true
		s.setSVIDs(decodeSVIDs(resp, s.td, s.now(), s.maxSVIDs))
	}
}

// watchBundles holds one SubscribeToX509Bundles stream. A message without
// a usable bundle of our trust domain is logged and the last good bundle
// stays.
func (s *Source) watchBundles(ctx context.Context, c delegatedidentityv1.DelegatedIdentityClient) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.SubscribeToX509Bundles(ctx, &delegatedidentityv1.SubscribeToX509BundlesRequest{})
	if err != nil {
		return false, fmt.Errorf("subscribing to X.509 bundles: %w", err)
	}
	delivered := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			return delivered, fmt.Errorf("receiving X.509 bundles: %w", err)
		}
		delivered = true
		b, err := decodeBundle(resp, s.td)
		if err != nil {
			s.log.Error("SPIRE agent sent an unusable bundle; keeping the last good one", "error", err)
			continue
		}
		s.setBundle(b)
	}
}
