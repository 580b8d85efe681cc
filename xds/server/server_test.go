package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/xds/translator"
)

var allTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType}

// TestInitialFetch: a proxy gets the whole configuration, acknowledges it,
// and the table records every acknowledged version — whether it connects
// after the first Update or before (then it waits for it).
func TestInitialFetch(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		early := dialConnected(t, s, path, proxyOptions{NodeID: "early", Delta: delta})

		r := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a", secret: "s/tls"}))
		if !r.Changed {
			t.Fatal("first update reported no change")
		}
		late := dialConnected(t, s, path, proxyOptions{NodeID: "late", Delta: delta})
		waitAck(t, s, r)
		for _, c := range []*testProxy{early, late} {
			for typ, want := range map[string][]string{
				resource.ClusterType:  {"c/a"},
				resource.EndpointType: {"c/a"},
				resource.ListenerType: {"l0"},
				resource.RouteType:    {"l0/routes"},
				resource.SecretType:   {"s/tls"},
			} {
				if got := c.Held(typ); !slices.Equal(got, want) {
					t.Errorf("%s holds %v, want %v", typ, got, want)
				}
			}
		}
		for _, node := range []string{"early", "late"} {
			n := nodeStatus(t, s, node)
			if !n.Connected || n.Streams != 1 || n.Delta != delta || n.Cluster != "nodemesh-proxy" || n.ConnectedSince.IsZero() {
				t.Errorf("status of %s: %+v", node, n)
			}
			for _, typ := range allTypes {
				ts := typeStatus(n, typ)
				if ts.VersionAcked != r.TypeVersions[typ] || ts.VersionSent != r.TypeVersions[typ] || ts.NonceSent == "" || ts.AckedAt.IsZero() {
					t.Errorf("%s %s: %+v, want version %s sent and acknowledged", node, typ, ts, r.TypeVersions[typ])
				}
			}
		}
		requireNoViolations(t, early, late)
	})
}

// TestNoPushWhenUnchanged: an equal Update reports no change and sends
// nothing; the next real change sends only the types that changed.
func TestNoPushWhenUnchanged(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		c := dialConnected(t, s, path, proxyOptions{NodeID: "p", Delta: delta})
		r1 := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
		waitAck(t, s, r1)
		before := len(c.Events())

		// Freshly translated, equal resources: new objects, same content.
		r2 := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
		if r2.Changed || r2.Version != r1.Version {
			t.Fatalf("equal update: changed=%t version %s -> %s", r2.Changed, r1.Version, r2.Version)
		}
		// Only the endpoints change (another port).
		r3 := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a", port: 9090}))
		if !r3.Changed {
			t.Fatal("endpoint change reported no change")
		}
		for _, typ := range allTypes {
			if same := r3.TypeVersions[typ] == r1.TypeVersions[typ]; same != (typ != resource.EndpointType) {
				t.Errorf("%s version %s -> %s", typ, r1.TypeVersions[typ], r3.TypeVersions[typ])
			}
		}
		waitAck(t, s, r3)
		after := c.Events()[before:]
		if len(after) != 1 || after[0].TypeURL != resource.EndpointType || after[0].Version != r3.TypeVersions[resource.EndpointType] {
			t.Errorf("events after the unchanged and the endpoint update: %+v, want one endpoint response", after)
		}
	})
}

// TestNack: a rejected update is recorded with its message, version, nonce
// and resources; WaitForAck reports it; the proxy is not sent the same
// content again; a fixed configuration is accepted and clears it.
func TestNack(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		const msg = `route configuration "l0/routes": virtual_hosts[0].routes[0].name: "routebad" rejected by test`
		c := dialConnected(t, s, path, proxyOptions{NodeID: "p", Delta: delta, Apply: func(typeURL string, res map[string]any) error {
			if typeURL == resource.RouteType && hasRouteNamed(res, "routebad") {
				return errors.New(msg)
			}
			return nil
		}})
		good := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
		waitAck(t, s, good)

		bad := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a", routeTag: "bad"}))
		err := s.WaitForAck(ctxT(t), bad.Version)
		var ne *NackError
		if !errors.As(err, &ne) {
			t.Fatalf("WaitForAck = %v, want a NackError", err)
		}
		if ne.Node != "p" || ne.TypeURL != resource.RouteType || ne.Nack.Message != msg || ne.Nack.Version != bad.TypeVersions[resource.RouteType] {
			t.Errorf("NackError %+v", ne)
		}
		ts := typeStatus(nodeStatus(t, s, "p"), resource.RouteType)
		if ts.LastNack == nil || ts.LastNack.Message != msg || ts.LastNack.Nonce == "" || ts.LastNack.At.IsZero() ||
			!slices.Equal(ts.LastNack.Resources, []string{"l0/routes"}) {
			t.Errorf("table entry %+v (nack %+v)", ts, ts.LastNack)
		}
		if ts.VersionAcked != good.TypeVersions[resource.RouteType] {
			t.Errorf("acked route version %s, want the previous good %s", ts.VersionAcked, good.TypeVersions[resource.RouteType])
		}

		fixed := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a", routeTag: "fixed"}))
		waitAck(t, s, fixed)
		rejected := 0
		for _, e := range c.Events() {
			if e.Rejected {
				rejected++
			}
		}
		if rejected != 1 {
			t.Errorf("the rejected routes were delivered %d times, want once", rejected)
		}
		ts = typeStatus(nodeStatus(t, s, "p"), resource.RouteType)
		if ts.VersionAcked != fixed.TypeVersions[resource.RouteType] || ts.LastNack == nil {
			t.Errorf("after the fix: %+v", ts)
		}
		requireNoViolations(t, c)
	})
}

// TestOrdering: one update changing every type reaches the proxy as
// clusters, endpoints, listeners, routes, in that order.
func TestOrdering(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		c := dialConnected(t, s, path, proxyOptions{NodeID: "p", Delta: delta})
		waitAck(t, s, update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a", listeners: []string{"l0"}})))
		before := len(c.Events())

		r := update(t, s, resources(t, spec{clusters: []string{"c/b"}, route: "c/b", port: 9090, listeners: []string{"l0", "l1"}}))
		waitAck(t, s, r)
		// The first response of each type after the update (clusters and
		// endpoints first arrive as the make step's superset).
		first := map[string]int{}
		for i, e := range c.Events()[before:] {
			if _, seen := first[e.TypeURL]; !seen {
				first[e.TypeURL] = i
			}
		}
		order := []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}
		for i := 1; i < len(order); i++ {
			a, okA := first[order[i-1]]
			b, okB := first[order[i]]
			if !okA || !okB || a > b {
				t.Errorf("%s (event %d, %t) must arrive before %s (event %d, %t); events %+v",
					order[i-1], a, okA, order[i], b, okB, c.Events()[before:])
			}
		}
		requireNoViolations(t, c)
	})
}

// TestListenUnix: the parent directory is created, the socket is 0660, a
// stale socket is replaced, and neither a live socket nor a regular file is
// taken over.
func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "xds.sock")
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	if _, err := ListenUnix(path); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	// Closing a Unix listener removes its file; leave a stale one behind
	// the way a crashed agent does.
	if ul, ok := l.(interface{ SetUnlinkOnClose(bool) }); ok {
		ul.SetUnlinkOnClose(false)
	}
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	l2, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	}
	l2.Close()

	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(file); err == nil {
		t.Error("a regular file was taken over")
	}
	if data, _ := os.ReadFile(file); string(data) != "data" {
		t.Error("a regular file was modified")
	}
}

// TestUpdateErrors: a bad update changes nothing and says why.
func TestUpdateErrors(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		c := dialConnected(t, s, path, proxyOptions{NodeID: "p", Delta: delta})
		good := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
		waitAck(t, s, good)
		events := len(c.Events())

		noEndpoints := resources(t, spec{clusters: []string{"c/a", "c/b"}, route: "c/a"})
		noEndpoints.ClusterLoadAssignments = noEndpoints.ClusterLoadAssignments[:1]
		dup := resources(t, spec{clusters: []string{"c/a"}, route: "c/a"})
		dup.Clusters = append(dup.Clusters, dup.Clusters[0])
		// A cluster the translator did not emit is validated here.
		invalid := resources(t, spec{clusters: []string{"c/a"}, route: "c/a"})
		invalid.Clusters[0] = proto.Clone(invalid.Clusters[0]).(*clusterv3.Cluster)
		invalid.Clusters[0].ConnectTimeout.Seconds = -1
		for name, tc := range map[string]struct {
			res  any
			want string
		}{
			"missing endpoints": {noEndpoints, "consistency"},
			"duplicate":         {dup, `"c/a": defined twice`},
			"invalid":           {invalid, "ConnectTimeout"},
			"nil":               {nil, "nil resources"},
		} {
			t.Run(name, func(t *testing.T) {
				res, _ := tc.res.(*translator.Resources)
				_, err := s.Update(context.Background(), res)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Update = %v, want an error mentioning %q", err, tc.want)
				}
			})
		}
		if err := s.WaitForAck(ctxT(t), good.Version); err != nil {
			t.Errorf("the last good version is no longer served: %v", err)
		}
		if got := len(c.Events()); got != events {
			t.Errorf("failed updates pushed %d responses", got-events)
		}
	})
}

// TestWaitForAckSuperseded: waiting for a replaced version fails fast.
func TestWaitForAckSuperseded(t *testing.T) {
	s, _ := startServer(t)
	r1 := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
	r2 := update(t, s, resources(t, spec{clusters: []string{"c/b"}, route: "c/b"}))
	waitAck(t, s, r2)
	if err := s.WaitForAck(ctxT(t), r1.Version); !errors.Is(err, ErrSuperseded) {
		t.Errorf("WaitForAck(old) = %v, want ErrSuperseded", err)
	}
	waitAck(t, s, r2) // a completed version stays acknowledged
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServeTCP: the optional TCP listener serves the same configuration.
func TestServeTCP(t *testing.T) {
	s, _ := startServer(t)
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	c := newProxy(t, "tcp://"+l.Addr().String(), proxyOptions{NodeID: "tcp", Delta: true})
	waitConnected(t, s, "tcp")
	r := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
	waitAck(t, s, r)
	if got := c.Held(resource.RouteType); !slices.Equal(got, []string{"l0/routes"}) {
		t.Errorf("over TCP the proxy holds routes %v", got)
	}
}

// TestRollbackRollsOutAgain: returning to an earlier configuration is a
// new rollout, not an already-acknowledged version.
func TestRollbackRollsOutAgain(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		c := dialConnected(t, s, path, proxyOptions{NodeID: "p", Delta: delta})
		a := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
		waitAck(t, s, a)
		waitAck(t, s, update(t, s, resources(t, spec{clusters: []string{"c/b"}, route: "c/b"})))
		again := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a"}))
		if again.Version != a.Version || !again.Changed {
			t.Fatalf("rollback: %+v", again)
		}
		waitAck(t, s, again)
		if got := c.Held(resource.ClusterType); !slices.Equal(got, []string{"c/a"}) {
			t.Errorf("after WaitForAck of the rollback the proxy holds %v", got)
		}
		requireNoViolations(t, c)
	})
}

// TestClusterSecrets: a secret only a cluster names (the client
// certificate of its upstream TLS) reaches proxies of both protocols
// beside the listeners' secrets, and they acknowledge the configuration.
// A state-of-the-world proxy names the secrets of its clusters and its
// listeners in one request, which the cache answers only when it holds
// every name it was asked for.
func TestClusterSecrets(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		p := dialConnected(t, s, path, proxyOptions{NodeID: "p", Delta: delta})
		r := update(t, s, resources(t, spec{clusters: []string{"c/a"}, route: "c/a", secret: "s/tls", clientSecret: "s/client"}))
		waitAck(t, s, r)
		if got, want := p.Held(resource.SecretType), []string{"s/client", "s/tls"}; !slices.Equal(got, want) {
			t.Errorf("secrets held %v, want %v", got, want)
		}
		requireNoViolations(t, p)
	})
}
