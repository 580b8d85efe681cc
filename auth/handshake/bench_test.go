package handshake

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/auth/issuer"
)

// BenchmarkHandshake measures complete mutual-authentication handshakes
// (TCP connect, TLS 1.3 with both chains verified, the confirmation byte)
// between two nodes' issuers over loopback, one at a time and with
// several initiators at once (as the manager's workers run them). Every
// handshake is a full one: there is no resumption to make later ones
// cheaper. Reports handshakes/s.
func BenchmarkHandshake(b *testing.B) {
	srvIss, err := issuer.New(td, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cliIss, err := issuer.New(td, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := srvIss.SetPeerAuthorities(cliIss.Authorities()); err != nil {
		b.Fatal(err)
	}
	if err := cliIss.SetPeerAuthorities(srvIss.Authorities()); err != nil {
		b.Fatal(err)
	}
	srv := NewServer(srvIss, localSet{100: true}, WithMaxPerPeer(64), WithMaxConcurrent(256))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	addr := netip.MustParseAddrPort(l.Addr().String())
	cli := NewClient(cliIss)
	ctx := context.Background()
	// Mint both SVIDs before timing: the issuer's first use signs them.
	if _, err := cli.Authenticate(ctx, 7, 100, addr); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := cli.Authenticate(ctx, 7, 100, addr); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4) // 4×GOMAXPROCS initiators, under the per-peer limit set above
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cli.Authenticate(ctx, 7, 100, addr); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	})
}
