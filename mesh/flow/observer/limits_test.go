package observer

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/nodemesh/nodemesh/mesh/flow"
	observerpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/observer"
)

// serveWith starts an observer with opts on a Unix socket and returns a
// function that opens a new client connection (each its own HTTP/2
// connection, so gRPC's per-connection stream limit does not apply).
// smallWindow fixes the client's flow-control windows at 64 KiB, so a
// client that stops reading stops the server after that much.
func serveWith(t *testing.T, store Store, smallWindow bool, opts ...Option) (*Server, func() observerpb.ObserverClient) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hubble.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := New(store, append([]Option{WithNodeName("node-1")}, opts...)...)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	dial := func() observerpb.ObserverClient {
		dopts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if smallWindow {
			dopts = append(dopts, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		}
		conn, err := grpc.NewClient("unix://"+sock, dopts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return observerpb.NewObserverClient(conn)
	}
	return srv, dial
}

// TestStreamsAreCappedServerWide: gRPC's stream limit is per connection,
// so many connections could each hold that many followers. The observer
// admits at most WithMaxStreams GetFlows streams in all; one more, on a
// connection of its own, is refused with ResourceExhausted, and a slot
// freed by a follower that left admits the next one.
func TestStreamsAreCappedServerWide(t *testing.T) {
	store := flow.NewStore(flow.WithCapacity(64))
	_, dial := serveWith(t, store, false, WithMaxStreams(2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var followers []observerpb.Observer_GetFlowsClient
	var cancels []context.CancelFunc
	for range 2 {
		fctx, fcancel := context.WithCancel(ctx)
		defer fcancel()
		s, err := dial().GetFlows(fctx, &observerpb.GetFlowsRequest{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		followers, cancels = append(followers, s), append(cancels, fcancel)
	}
	awaitFollowing(ctx, t, store, followers...)

	// A third stream, on a third connection, is refused.
	s, err := dial().GetFlows(ctx, &observerpb.GetFlowsRequest{Follow: true})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third stream: got %v, want ResourceExhausted", err)
	}

	// One follower leaves; its slot admits a new stream (eventually: the
	// server notices the cancellation on its own time).
	cancels[0]()
	for {
		s, err := dial().GetFlows(ctx, &observerpb.GetFlowsRequest{Number: 1})
		if err == nil {
			_, err = s.Recv()
		}
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("after a follower left: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the slot of the follower that left was never freed")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// awaitFollowing returns once every follower received a flow added
// after it started (a follower without since starts at the newest flow,
// so flows are added until each got one).
func awaitFollowing(ctx context.Context, t *testing.T, store *flow.Store, followers ...observerpb.Observer_GetFlowsClient) {
	t.Helper()
	got := make(chan error, len(followers))
	for _, s := range followers {
		go func() {
			_, err := s.Recv()
			got <- err
		}()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seen := 0; seen < len(followers); {
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("follower: %v", err)
			}
			seen++
		case <-tick.C:
			store.Add(httpFlow(0, flow.Forwarded, "a/x", "a/y", "GET", "/", 200))
		case <-ctx.Done():
			t.Fatal("the followers received nothing")
		}
	}
}

// bigFlow is an HTTP flow with a long path, so a few hundred fill a
// client's 64 KiB window.
func bigFlow(i int) flow.Flow {
	return httpFlow(i, flow.Forwarded, "a/x", "a/y", "GET", "/"+strings.Repeat("p", 1000), 200)
}

// TestSlowFollowerIsCutOff: a follower that stops reading would hold its
// stream, and the goroutine serving it, for ever. A send that does not
// complete within the send timeout ends the stream with
// DeadlineExceeded; the client, reading again, gets what was already
// under way and then that status, not the rest of the flows.
func TestSlowFollowerIsCutOff(t *testing.T) {
	const n = 2000 // ~2 MB of flows: far beyond 64 KiB windows
	store := flow.NewStore(flow.WithCapacity(n))
	_, dial := serveWith(t, store, true, WithSendTimeout(500*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := dial().GetFlows(ctx, &observerpb.GetFlowsRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	awaitFollowing(ctx, t, store, s)
	for i := range n {
		store.Add(bigFlow(i))
	}
	// Stop reading for ten times the send timeout.
	time.Sleep(5 * time.Second)
	received := 0
	for {
		_, err := s.Recv()
		if err != nil {
			if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "did not read") {
				t.Fatalf("after %d flows: %v, want the server's DeadlineExceeded", received, err)
			}
			break
		}
		received++
		if received == n {
			t.Fatalf("the server kept sending all %d flows to a follower that stopped reading", n)
		}
	}
}

// readTracker is a flow.Store that records how far GetFlows has read.
type readTracker struct {
	*flow.Store
	mu  sync.Mutex
	max uint64
}

func (r *readTracker) Read(seq uint64, max int) ([]flow.Flow, uint64, uint64) {
	flows, next, lost := r.Store.Read(seq, max)
	r.mu.Lock()
	r.max = next
	r.mu.Unlock()
	return flows, next, lost
}

func (r *readTracker) readUpTo() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.max
}

// TestHistoryIsStreamedNotBuffered: a request for every held flow (number
// 0, no follow) must not convert and hold the whole ring before sending:
// the first flow reaches the client while the server has read only a part
// of the store, and a client that stops reading stops the reading.
func TestHistoryIsStreamedNotBuffered(t *testing.T) {
	const n = 20 * batch
	store := &readTracker{Store: flow.NewStore(flow.WithCapacity(n))}
	for i := range n {
		store.Add(bigFlow(i))
	}
	_, dial := serveWith(t, store, true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := dial().GetFlows(ctx, &observerpb.GetFlowsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	// The server fills the 64 KiB windows (~60 of these flows) and
	// stops; it must not have gone through the ring.
	if got := store.readUpTo(); got >= n {
		t.Fatalf("the server read all %d flows before the client got the first", got)
	}
	// Reading on delivers all of them, in order.
	received := 1
	for {
		_, err := s.Recv()
		if err != nil {
			if status.Code(err) != codes.OK && err.Error() != "EOF" {
				t.Fatalf("after %d flows: %v", received, err)
			}
			break
		}
		received++
	}
	if received != n {
		t.Fatalf("received %d flows, want %d", received, n)
	}
}
