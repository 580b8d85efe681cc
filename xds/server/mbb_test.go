package server

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nodemesh/nodemesh/proxylib/xdsclient"
)

// TestMakeBeforeBreak switches a route between clusters again and again,
// each switch also removing the old cluster, with proxies of both
// protocols connected. After every response a proxy applies, every route it
// holds must use clusters it knows with their endpoints; the old cluster
// disappears only after all proxies moved on.
func TestMakeBeforeBreak(t *testing.T) {
	s, path := startServer(t)
	sotw := dialConnected(t, s, path, proxyOptions{NodeID: "sotw"})
	delta := dialConnected(t, s, path, proxyOptions{NodeID: "delta", Delta: true})
	waitAck(t, s, update(t, s, resources(t, spec{clusters: []string{"c/0"}, route: "c/0", secret: "s/0"})))

	// Acknowledged one by one.
	for i := 1; i <= 3; i++ {
		c := fmt.Sprintf("c/%d", i)
		r := update(t, s, resources(t, spec{clusters: []string{c}, route: c, secret: fmt.Sprintf("s/%d", i)}))
		waitAck(t, s, r)
		for _, p := range []*testProxy{sotw, delta} {
			if got := p.Held(resource.ClusterType); !slices.Equal(got, []string{c}) {
				t.Errorf("after switching to %s a proxy holds clusters %v", c, got)
			}
			if got := p.Held(resource.SecretType); !slices.Equal(got, []string{fmt.Sprintf("s/%d", i)}) {
				t.Errorf("after switching to %s a proxy holds secrets %v", c, got)
			}
		}
	}
	// Back to back, the next update arriving mid-rollout.
	var last UpdateResult
	for i := 4; i <= 12; i++ {
		c := fmt.Sprintf("c/%d", i)
		last = update(t, s, resources(t, spec{clusters: []string{c}, route: c, port: uint32(9000 + i)}))
	}
	waitAck(t, s, last)
	for _, p := range []*testProxy{sotw, delta} {
		if got := p.Held(resource.ClusterType); !slices.Equal(got, []string{"c/12"}) {
			t.Errorf("retained clusters never removed: %v", got)
		}
	}
	requireNoViolations(t, sotw, delta)
}

// TestRoutesWaitForClusters: routes that use a new cluster are not sent
// before every proxy has the cluster and its endpoints.
func TestRoutesWaitForClusters(t *testing.T) {
	modes(t, func(t *testing.T, deltaMode bool) {
		s, path := startServer(t)
		release := make(chan struct{})
		slow := dialConnected(t, s, path, proxyOptions{NodeID: "slow", Delta: deltaMode, Apply: func(typeURL string, res map[string]any) error {
			if typeURL == resource.EndpointType {
				if _, ok := res["c/b"]; ok {
					<-release // applying the new endpoints takes a while
				}
			}
			return nil
		}})
		// Registered after the proxy, so it runs before the proxy is
		// stopped: a test failing early must not leave it blocked.
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		t.Cleanup(unblock)
		fast := dialConnected(t, s, path, proxyOptions{NodeID: "fast", Delta: !deltaMode})
		first := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
		waitAck(t, s, first)

		r := update(t, s, resources(t, spec{clusters: []string{"c/b"}, route: "c/b"}))
		// The fast proxy gets and acknowledges the new cluster...
		waitFor(t, func() bool { return slices.Contains(fast.Held(resource.EndpointType), "c/b") })
		time.Sleep(200 * time.Millisecond)
		// ...but no proxy is sent the new routes while the slow one is
		// still applying the endpoints.
		for _, node := range []string{"fast", "slow"} {
			if got := typeStatus(nodeStatus(t, s, node), resource.RouteType).VersionSent; got != first.TypeVersions[resource.RouteType] {
				t.Errorf("%s was sent routes %s before every proxy had the new cluster: %+v", node, got, s.Status())
			}
		}
		unblock()
		waitAck(t, s, r)
		requireNoViolations(t, slow, fast)
	})
}

// TestRetainedWhileRejected: a proxy that rejects the new routes keeps the
// old ones, so the cluster they use stays published (for everyone) until
// that proxy goes away.
func TestRetainedWhileRejected(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		rejecting := dialConnected(t, s, path, proxyOptions{NodeID: "rejecting", Delta: delta, Apply: func(typeURL string, res map[string]any) error {
			if typeURL == resource.RouteType && hasRouteNamed(res, "routenew") {
				return errors.New("routes rejected by test")
			}
			return nil
		}})
		ok := dialConnected(t, s, path, proxyOptions{NodeID: "ok", Delta: !delta})
		waitAck(t, s, update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"})))

		r := update(t, s, resources(t, spec{clusters: []string{"c/b"}, route: "c/b", routeTag: "new"}))
		var ne *NackError
		if err := s.WaitForAck(ctxT(t), r.Version); !errors.As(err, &ne) || ne.Node != "rejecting" {
			t.Fatalf("WaitForAck = %v, want the rejection", err)
		}
		waitFor(t, func() bool {
			ts := typeStatus(nodeStatus(t, s, "ok"), resource.RouteType)
			return ts.VersionAcked == r.TypeVersions[resource.RouteType]
		})
		time.Sleep(100 * time.Millisecond)
		if got := ok.Held(resource.ClusterType); !slices.Equal(got, []string{"c/a", "c/b"}) {
			t.Errorf("while a proxy still routes to c/a, clusters are %v", got)
		}
		requireNoViolations(t, rejecting, ok)

		rejecting.Disconnect()
		waitFor(t, func() bool { return slices.Equal(ok.Held(resource.ClusterType), []string{"c/b"}) })
		waitAck(t, s, r)
		requireNoViolations(t, ok)
	})
}

// TestStageTimeout: a proxy that never answers delays new routes only for
// the stage timeout.
func TestStageTimeout(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t, WithStageTimeout(300*time.Millisecond))
		good := dialConnected(t, s, path, proxyOptions{NodeID: "good", Delta: delta})
		waitAck(t, s, update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"})))

		// A raw stream of the same protocol that subscribes to clusters,
		// receives the current ones and then never answers.
		conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
		node := &corev3.Node{Id: "stuck", Cluster: xdsclient.NodeCluster}
		if delta {
			stuck, err := ads.DeltaAggregatedResources(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := stuck.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, Node: node}); err != nil {
				t.Fatal(err)
			}
			if _, err := stuck.Recv(); err != nil {
				t.Fatal(err)
			}
		} else {
			stuck, err := ads.StreamAggregatedResources(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := stuck.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, Node: node}); err != nil {
				t.Fatal(err)
			}
			if _, err := stuck.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		r := update(t, s, resources(t, spec{clusters: []string{"c/b"}, route: "c/b"}))
		if err := good.WaitFor(ctxT(t), "routes to c/b", func(c *testProxy) bool {
			return c.Version(resource.RouteType) == r.TypeVersions[resource.RouteType]
		}); err != nil {
			t.Fatal(err)
		}
		// The stuck proxy never acknowledged the routes' predecessors, so the
		// old cluster stays.
		if got := good.Held(resource.ClusterType); !slices.Contains(got, "c/a") {
			t.Errorf("c/a removed while a proxy may still use it: %v", got)
		}
		requireNoViolations(t, good)
	})
}

// TestReconnect: a proxy that goes away is marked disconnected, keeps its
// configuration, and on reconnecting (to the same or a restarted server)
// catches up and is marked connected again. Its client resumes with the
// versions it accepted (state of the world) or its resources' versions
// (delta).
func TestReconnect(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		c := dialConnected(t, s, path, proxyOptions{NodeID: "p", Delta: delta})
		waitAck(t, s, update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"})))
		firstSince := nodeStatus(t, s, "p").ConnectedSince

		c.Disconnect()
		waitFor(t, func() bool { return !nodeStatus(t, s, "p").Connected })
		if n := nodeStatus(t, s, "p"); n.DisconnectedAt.IsZero() || n.Streams != 0 {
			t.Errorf("disconnected status %+v", n)
		}
		if got := c.Held(resource.ClusterType); !slices.Equal(got, []string{"c/a"}) {
			t.Errorf("configuration lost while disconnected: %v", got)
		}
		r := update(t, s, resources(t, spec{clusters: []string{"c/b"}, route: "c/b"}))
		waitAck(t, s, r) // nobody connected: published at once
		c.Reconnect()
		waitConnected(t, s, "p")
		// r completed while nobody was connected, so WaitForAck does not
		// wait for the returning proxy: wait for its own acknowledgement.
		waitProxyAcked(t, s, "p", r)
		if got := c.Held(resource.ClusterType); !slices.Equal(got, []string{"c/b"}) {
			t.Errorf("after reconnecting the proxy holds %v", got)
		}
		n := nodeStatus(t, s, "p")
		if !n.Connected || !n.DisconnectedAt.IsZero() || !n.ConnectedSince.After(firstSince) {
			t.Errorf("reconnected status %+v", n)
		}

		// The agent restarts: a new server on the same socket path. The
		// proxy's client finds it by itself, retrying with backoff.
		streams := c.client.Stats().Streams
		s.Stop(time.Second)
		s2 := startServerAt(t, path)
		r2 := update(t, s2, resources(t, spec{clusters: []string{"c/c"}, route: "c/c"}))
		waitConnected(t, s2, "p")
		waitProxyAcked(t, s2, "p", r2)
		if got := c.Held(resource.ClusterType); !slices.Equal(got, []string{"c/c"}) {
			t.Errorf("after the server restart the proxy holds %v", got)
		}
		if got := c.client.Stats().Streams; got <= streams {
			t.Errorf("the client counts %d streams after the restart, %d before", got, streams)
		}
		// No make-before-break assertion here: the proxy was away while
		// its routes' cluster was removed (see the package comment).
	})
}

// waitProxyAcked waits until node acknowledged r's clusters.
func waitProxyAcked(t *testing.T, s *Server, node string, r UpdateResult) {
	t.Helper()
	waitFor(t, func() bool {
		return typeStatus(nodeStatus(t, s, node), resource.ClusterType).VersionAcked == r.TypeVersions[resource.ClusterType]
	})
}
