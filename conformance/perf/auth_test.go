package perf

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/handshake"
	"github.com/nodemesh/nodemesh/auth/issuer"
	"github.com/nodemesh/nodemesh/auth/manager"
	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent"
)

// BenchmarkFirstConnection measures how long the first TCP connection of a
// relation that policy requires authenticated takes to establish, with
// the real datapath, auth manager, issuer and handshake (root):
//
//	eager      the agent authenticated the relation from policy before
//	           the connection (nodemesh): the SYN finds its auth entry
//	on-demand  the relation is authenticated only when the datapath drops
//	           the first SYN for lack of an entry (Cilium's path): the
//	           handshake follows the drop event and the client's SYN
//	           retransmission (1 s) gets through
//
// Each iteration is a relation the datapath has no entry for yet (the
// previous one is withdrawn untimed). Reports first-conn-ms.
func BenchmarkFirstConnection(b *testing.B) {
	for _, mode := range []string{"eager", "on-demand"} {
		b.Run(mode, func(b *testing.B) {
			env := newAuthEnv(b)
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				if mode == "eager" {
					env.mgr.SetPairs([]manager.Pair{env.pair, env.other})
					env.waitEntry(b, env.pair.Key, true)
				} else {
					env.mgr.SetPairs([]manager.Pair{env.other})
				}
				b.StartTimer()
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := env.client.Dial(ctx, "tcp", env.target.String())
				cancel()
				if err != nil {
					b.Fatalf("first connection: %v", err)
				}
				total += time.Since(start)
				b.StopTimer()
				c.Close()
				// Withdraw the relation: the next iteration is a new
				// first connection.
				env.mgr.SetPairs([]manager.Pair{env.other})
				env.waitEntry(b, env.pair.Key, false)
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "first-conn-ms")
		})
	}
}

type authEnv struct {
	dp     *datapath.Datapath
	mgr    *manager.Manager
	client *testbed.Namespace
	target netip.AddrPort
	// pair is the relation the connection needs; other is a relation
	// with the same node that keeps the node's address known to the
	// manager (its on-demand path needs it).
	pair, other manager.Pair
}

const (
	clientID = model.Identity(1000)
	serverID = model.Identity(1001)
	strayID  = model.Identity(1002)
	authPort = 8080
)

func newAuthEnv(b *testing.B) *authEnv {
	bed := testbed.New(b, testbed.Config{Workloads: 2})
	dp, err := datapath.New(
		datapath.WithPinDir(filepath.Join(testbed.BPFFS(b), "nodemesh")),
		datapath.WithNetNS(bed.Node.Path),
		datapath.WithMapSizes(datapath.MapSizes{Conntrack: 8192, Auth: 1024, IPCache: 1024, Policy: 4096, EventBytes: 1 << 18}),
		datapath.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dp.Uninstall() })
	cli, srv := bed.Workloads[0], bed.Workloads[1]
	eps := []model.Endpoint{
		{ID: 1, Identity: clientID, IfIndex: cli.HostIfIndex, IPs: []netip.Addr{cli.IPv4}},
		{ID: 2, Identity: serverID, IfIndex: srv.HostIfIndex, IPs: []netip.Addr{srv.IPv4}},
	}
	if err := dp.SyncEndpoints(eps); err != nil {
		b.Fatal(err)
	}
	if err := dp.SyncAttachments([]int{cli.HostIfIndex, srv.HostIfIndex}); err != nil {
		b.Fatal(err)
	}
	err = dp.SyncPolicy(model.Policy{Enforce: map[model.Identity]model.Enforcement{serverID: model.EnforceIngress},
		Entries: []model.PolicyEntry{{Subject: serverID, Remote: clientID, Direction: model.Ingress, Proto: model.ProtoTCP,
			Port: authPort, Verdict: model.Allow, Auth: model.AuthSPIFFE}}})
	if err != nil {
		b.Fatal(err)
	}
	s, err := srv.StartServer(authPort)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })

	// This node's agent: issuer, handshake server on loopback (it hosts
	// both identities), client, manager on the datapath's auth map, and
	// the auth-required events feeding the manager's on-demand path.
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	iss, err := issuer.New(td, b.TempDir(), issuer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	hs := handshake.NewServer(iss, hosted{auth.Identity(clientID): true, auth.Identity(serverID): true, auth.Identity(strayID): true},
		handshake.WithLogger(slog.New(slog.DiscardHandler)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go hs.Serve(l)
	b.Cleanup(func() { hs.Close() })
	node := netip.MustParseAddrPort(l.Addr().String())
	mgr := manager.New(agent.AuthMap(dp), iss, handshake.NewClient(iss, handshake.WithLogger(slog.New(slog.DiscardHandler))),
		manager.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { mgr.Run(ctx); close(done) }()
	events, err := dp.Events()
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			e, err := events.Read()
			if errors.Is(err, datapath.ErrClosed) {
				return
			}
			if err == nil && e.Type == datapath.EventAuthRequired {
				if k, ok := agent.ManagerKey(e.AuthKey()); ok {
					mgr.Request(k)
				}
			}
		}
	}()
	b.Cleanup(func() { events.Close(); cancel(); <-done })
	key := func(remote model.Identity) manager.Key {
		return manager.Key{Local: auth.Identity(serverID), Remote: auth.Identity(remote)}
	}
	return &authEnv{dp: dp, mgr: mgr, client: cli.Namespace, target: netip.AddrPortFrom(srv.IPv4, authPort),
		pair: manager.Pair{Key: key(clientID), Node: node}, other: manager.Pair{Key: key(strayID), Node: node}}
}

type hosted map[auth.Identity]bool

func (h hosted) IsLocal(id auth.Identity) bool { return h[id] }

// waitEntry waits until the datapath's auth map holds k (or no longer
// does), bounded generously.
func (e *authEnv) waitEntry(b *testing.B, k manager.Key, present bool) {
	dk := model.AuthKey{Local: model.Identity(k.Local), Remote: model.Identity(k.Remote), RemoteNode: k.RemoteNode, Type: model.AuthSPIFFE}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, err := e.dp.ListAuth()
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := rows[dk]; ok == present {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("auth entry %+v present=%v: timed out; map %v", k, !present, rows)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
