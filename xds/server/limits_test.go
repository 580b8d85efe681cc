package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// adsConn is a raw gRPC client of the server's socket, standing for any
// client that reaches it.
func adsConn(t *testing.T, path string) discoveryv3.AggregatedDiscoveryServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
}

// openSotW opens a state-of-the-world stream that presents node id and
// subscribes to clusters; cancel ends it.
func openSotW(t *testing.T, c discoveryv3.AggregatedDiscoveryServiceClient, id string) (discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxT(t))
	st, err := c.StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// io.EOF: the server ended the stream already (refused it); Recv
	// returns its status.
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: resource.ClusterType}); err != nil && err != io.EOF {
		cancel()
		t.Fatal(err)
	}
	return st, cancel
}

func statusIDs(s *Server) []string {
	var out []string
	for _, n := range s.Status() {
		out = append(out, n.ID)
	}
	return out
}

// TestNodeTableBounded: many clients with distinct node IDs come and go
// one after the other; the table keeps the connected nodes and only the
// most recently disconnected ones, and no stream outlives its client.
func TestNodeTableBounded(t *testing.T) {
	s, path := startServer(t, WithMaxStreams(8), WithMaxDisconnectedNodes(4))
	c := adsConn(t, path)
	const n = 40
	for i := range n {
		id := fmt.Sprintf("node-%03d", i)
		_, cancel := openSotW(t, c, id)
		waitConnected(t, s, id)
		cancel()
		waitFor(t, func() bool {
			for _, ns := range s.Status() {
				if ns.ID == id {
					return !ns.Connected
				}
			}
			return false
		})
		if got := len(s.Status()); got > 4 {
			t.Fatalf("after %d nodes the table holds %d: %v", i+1, got, statusIDs(s))
		}
	}
	if got, want := strings.Join(statusIDs(s), ","), "node-036,node-037,node-038,node-039"; got != want {
		t.Errorf("table %s, want the last four disconnected: %s", got, want)
	}
	// A connected node stays whatever the disconnections around it.
	_, cancelKeep := openSotW(t, c, "keep")
	defer cancelKeep()
	waitConnected(t, s, "keep")
	for i := range 6 {
		id := fmt.Sprintf("late-%d", i)
		_, cancel := openSotW(t, c, id)
		waitConnected(t, s, id)
		cancel()
		waitFor(t, func() bool { return !nodeStatus(t, s, id).Connected })
	}
	if got := len(s.Status()); got != 5 {
		t.Errorf("table of %d nodes, want the connected one and four: %v", got, statusIDs(s))
	}
	if ns := nodeStatus(t, s, "keep"); !ns.Connected {
		t.Errorf("the connected node was dropped: %+v", ns)
	}
	waitFor(t, func() bool { return s.Counters().OpenStreams == 1 })
}

// TestStreamLimit: beyond WithMaxStreams open streams a new one is
// refused with ResourceExhausted and a message saying so, without an
// entry in the table; once one ends, a new one is served.
func TestStreamLimit(t *testing.T) {
	s, path := startServer(t, WithMaxStreams(3))
	c := adsConn(t, path)
	var cancels []context.CancelFunc
	for i := range 3 {
		id := fmt.Sprintf("n%d", i)
		_, cancel := openSotW(t, c, id)
		cancels = append(cancels, cancel)
		waitConnected(t, s, id)
	}
	st, cancel := openSotW(t, c, "one-too-many")
	defer cancel()
	_, err := st.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "3 streams are open") {
		t.Fatalf("fourth stream: %v, want ResourceExhausted", err)
	}
	for _, ns := range s.Status() {
		if ns.ID == "one-too-many" {
			t.Fatalf("a refused stream entered the table: %+v", ns)
		}
	}
	if r := s.Counters().Refused; r != 1 {
		t.Errorf("refused %d, want 1", r)
	}
	cancels[0]()
	waitFor(t, func() bool { return s.grpcStreams.Load() == 2 })
	_, cancel = openSotW(t, c, "later")
	defer cancel()
	waitConnected(t, s, "later")
	for _, c := range cancels[1:] {
		c()
	}
}

// TestLongNodeID: a node ID beyond MaxNodeFieldBytes ends its stream
// with InvalidArgument and never enters the table.
func TestLongNodeID(t *testing.T) {
	s, path := startServer(t)
	c := adsConn(t, path)
	st, cancel := openSotW(t, c, strings.Repeat("n", MaxNodeFieldBytes+1))
	defer cancel()
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("long node ID: %v, want InvalidArgument", err)
	}
	ctx, cancelD := context.WithCancel(ctxT(t))
	defer cancelD()
	d, err := c.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "n", Cluster: strings.Repeat("c", MaxNodeFieldBytes+1)}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("long cluster: %v, want InvalidArgument", err)
	}
	if ids := statusIDs(s); len(ids) != 0 {
		t.Errorf("table %q, want empty", ids)
	}
}

// TestDeltaInitialVersionsOnce: a delta stream's initial resource
// versions count in a type's first request only; later requests listing
// new names do not grow what the server records for the stream.
func TestDeltaInitialVersionsOnce(t *testing.T) {
	s, path := startServer(t)
	c := adsConn(t, path)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	d, err := c.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	versions := func(prefix string, n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("%s-%d", prefix, i)] = "v1"
		}
		return m
	}
	send := func(r *discoveryv3.DeltaDiscoveryRequest) {
		t.Helper()
		if err := d.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "d"}, TypeUrl: resource.ClusterType, InitialResourceVersions: versions("held", 10)})
	for i := range 20 {
		send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, InitialResourceVersions: versions(fmt.Sprint("more", i), 500)})
	}
	// Requests are handled in order: once the listener subscription
	// shows, every cluster request before it was handled.
	send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType})
	waitFor(t, func() bool { return typeStatus(nodeStatus(t, s, "d"), resource.ListenerType).TypeURL != "" })
	s.mu.Lock()
	n := len(s.streamsAckedLocked(kindCluster))
	s.mu.Unlock()
	if n != 10 {
		t.Errorf("the stream is recorded to hold %d clusters, want the first request's 10", n)
	}
}

// TestSotWRequestNamesBounded: the names a state-of-the-world request
// lists are remembered with the response only as far as the response
// could carry them (resources of its set), however many the client
// lists.
func TestSotWRequestNamesBounded(t *testing.T) {
	s, path := startServer(t)
	update(t, s, resources(t, spec{clusters: []string{"a", "b"}, route: "a"}))
	c := adsConn(t, path)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	st, err := c.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b"}
	for i := range 5000 {
		names = append(names, fmt.Sprintf("bogus-%d", i))
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "s"}, TypeUrl: resource.ClusterType, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) != 2 {
		t.Fatalf("%d clusters in the response, want 2", len(resp.GetResources()))
	}
	s.mu.Lock()
	var kept int
	for _, str := range s.streams {
		for _, r := range str.types[kindCluster].history {
			kept += len(r.names)
		}
	}
	s.mu.Unlock()
	if kept != 2 {
		t.Errorf("%d request names remembered, want the 2 the response carried", kept)
	}
}

// TestUnservedTypeRefused: a request for a resource type the server does
// not serve ends the stream with InvalidArgument, in both protocols, while
// a stream asking for every served type (Envoy's and proxylib's: clusters,
// endpoints, listeners, routes, secrets, extension configurations) is
// served.
func TestUnservedTypeRefused(t *testing.T) {
	s, path := startServer(t)
	c := adsConn(t, path)

	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	ok, err := c.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range kindTypeURL {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: u}
		if i == 0 {
			req.Node = &corev3.Node{Id: "all-types"}
		}
		if err := ok.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	waitConnected(t, s, "all-types")
	waitFor(t, func() bool {
		return typeStatus(nodeStatus(t, s, "all-types"), resource.ExtensionConfigType).TypeURL != ""
	})

	st, cancelS := openSotW(t, c, "sotw")
	defer cancelS()
	if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.RuntimeType}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not served") {
		t.Fatalf("state of the world, runtime type: %v, want InvalidArgument", err)
	}

	ctxD, cancelD := context.WithCancel(ctxT(t))
	defer cancelD()
	d, err := c.DeltaAggregatedResources(ctxD)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "delta"}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := d.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: fmt.Sprintf("type.googleapis.com/invented.T%d", i)}); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	if _, err := d.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "invented.T0") {
		t.Fatalf("delta, invented type: %v, want InvalidArgument", err)
	}
	if !nodeStatus(t, s, "all-types").Connected {
		t.Error("the stream asking for the served types was ended")
	}
}

// names lists n resource names with a prefix.
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// TestDeltaSubscriptionsBounded: a delta stream may subscribe and
// unsubscribe names at will as long as it holds at most
// MaxSubscribedNames per type at once; the request that would go past
// that ends the stream with InvalidArgument.
func TestDeltaSubscriptionsBounded(t *testing.T) {
	s, path := startServer(t)
	c := adsConn(t, path)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	d, err := c.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *discoveryv3.DeltaDiscoveryRequest) {
		t.Helper()
		if err := d.Send(r); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	const batch = 8192
	// Twice the bound in all, never more than half of it held.
	send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "d"}, TypeUrl: resource.RouteType, ResourceNamesSubscribe: names("r0", batch)})
	for i := 1; i < 2*MaxSubscribedNames/batch; i++ {
		var drop []string
		if i >= MaxSubscribedNames/2/batch {
			drop = names(fmt.Sprint("r", i-MaxSubscribedNames/2/batch), batch)
		}
		send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.RouteType,
			ResourceNamesSubscribe: names(fmt.Sprint("r", i), batch), ResourceNamesUnsubscribe: drop})
	}
	// Requests are handled in order: once the listener subscription
	// shows, every route request before it was accepted.
	send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType})
	waitConnected(t, s, "d")
	waitFor(t, func() bool { return typeStatus(nodeStatus(t, s, "d"), resource.ListenerType).TypeURL != "" })
	for i := range MaxSubscribedNames/batch + 1 {
		send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: names(fmt.Sprint("e", i), batch)})
	}
	if _, err := d.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "subscribed resource names") {
		t.Fatalf("%d endpoint names subscribed: %v, want InvalidArgument", MaxSubscribedNames+batch, err)
	}
}

// TestDeltaInitialVersionsBounded: a type's first delta request may
// present at most MaxSubscribedNames initial resource versions.
func TestDeltaInitialVersionsBounded(t *testing.T) {
	_, path := startServer(t)
	c := adsConn(t, path)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	d, err := c.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := make(map[string]string, MaxSubscribedNames+1)
	for _, n := range names("c", MaxSubscribedNames+1) {
		v[n] = "1"
	}
	if err := d.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "d"}, TypeUrl: resource.ClusterType, InitialResourceVersions: v}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "initial resource versions") {
		t.Fatalf("%d initial versions: %v, want InvalidArgument", len(v), err)
	}
}

// TestStreamLimitPerClient: one client (this process on the Unix socket,
// one address over TCP) may open at most WithMaxStreamsPerClient streams;
// one more is refused with ResourceExhausted naming the client, while
// other clients are still served, and a freed stream is usable again.
func TestStreamLimitPerClient(t *testing.T) {
	s, path := startServer(t, WithMaxStreams(16), WithMaxStreamsPerClient(2))
	tl, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(tl) }()
	t.Cleanup(func() {
		s.Stop(time.Second)
		<-served
	})
	tcpConn := func(local string) discoveryv3.AggregatedDiscoveryServiceClient {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		conn, err := grpc.NewClient("passthrough:///"+tl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	}
	refused := func(c discoveryv3.AggregatedDiscoveryServiceClient, id, client string) {
		t.Helper()
		st, cancel := openSotW(t, c, id)
		defer cancel()
		_, err := st.Recv()
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), client) {
			t.Fatalf("third stream of %s: %v, want ResourceExhausted naming it", client, err)
		}
	}

	// This process, over two connections of the Unix socket.
	u1, u2 := adsConn(t, path), adsConn(t, path)
	_, cancelU1 := openSotW(t, u1, "u1")
	defer cancelU1()
	_, cancelU2 := openSotW(t, u2, "u2")
	defer cancelU2()
	waitConnected(t, s, "u1")
	waitConnected(t, s, "u2")
	refused(u1, "u3", fmt.Sprintf("pid %d ", os.Getpid()))

	// Other clients are served meanwhile; each has its own bound.
	a := tcpConn("127.0.0.1")
	for _, id := range []string{"a1", "a2"} {
		_, cancel := openSotW(t, a, id)
		defer cancel()
		waitConnected(t, s, id)
	}
	refused(a, "a3", "127.0.0.1")
	b := tcpConn("127.0.0.2")
	_, cancelB := openSotW(t, b, "b1")
	defer cancelB()
	waitConnected(t, s, "b1")
	if r := s.Counters().Refused; r != 2 {
		t.Errorf("refused %d, want 2", r)
	}

	// A stream that ends frees its place.
	cancelU1()
	waitFor(t, func() bool { return !nodeStatus(t, s, "u1").Connected })
	waitFor(t, func() bool {
		s.clientsMu.Lock()
		defer s.clientsMu.Unlock()
		return s.clientStreams[fmt.Sprintf("pid %d (uid %d)", os.Getpid(), os.Getuid())] == 1
	})
	_, cancelU4 := openSotW(t, u1, "u4")
	defer cancelU4()
	waitConnected(t, s, "u4")
}
