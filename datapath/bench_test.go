package datapath_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// BenchmarkRedirect measures, on one machine in one run, what the L7
// redirect costs: connection setup rate and request throughput (64-byte
// request, 64-byte response) between two workloads
//
//	bare      client -> server, no datapath at all (the machine's floor)
//	direct    client -> server, eBPF datapath attached, no redirect
//	ebpf      client -> bpf_sk_assign -> pass-through proxy -> server
//	iptables  client -> iptables TPROXY rule -> the same proxy -> server
//
// Each variant reports its rate and its ratio to direct (and iptables its
// ratio to ebpf), so the cost of the redirect reads as a number. The proxy
// is the test bed's pass-through proxy with one SO_REUSEPORT listener per
// CPU in both proxied variants.
func BenchmarkRedirect(b *testing.B) {
	results := map[string]float64{}
	for _, variant := range []string{"bare", "direct", "ebpf", "iptables"} {
		b.Run(variant, func(b *testing.B) {
			env := newBenchEnv(b, variant)
			b.Run("connect", func(b *testing.B) {
				rate := env.benchConnect(b)
				results[variant+"/connect"] = rate
				b.ReportMetric(rate, "conn/s")
				reportRatios(b, results, variant, "connect")
			})
			b.Run("request", func(b *testing.B) {
				rate, p50, p99 := env.benchRequest(b, 16)
				results[variant+"/request"] = rate
				b.ReportMetric(rate, "req/s")
				b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
				b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
				reportRatios(b, results, variant, "request")
			})
		})
	}
}

func reportRatios(b *testing.B, results map[string]float64, variant, kind string) {
	if variant == "direct" || variant == "bare" {
		return
	}
	if d := results["direct/"+kind]; d > 0 {
		b.ReportMetric(results[variant+"/"+kind]/d, "x-direct")
	}
	if e := results["ebpf/"+kind]; variant == "iptables" && e > 0 {
		b.ReportMetric(results[variant+"/"+kind]/e, "x-ebpf")
	}
}

const benchMsg = 64

type benchEnv struct {
	bed    *testbed.Bed
	target netip.AddrPort
}

func newBenchEnv(b *testing.B, variant string) *benchEnv {
	b.Helper()
	bed := testbed.New(b, testbed.Config{Workloads: 2})
	env := &benchEnv{bed: bed, target: netip.AddrPortFrom(bed.Workloads[1].IPv4, appPort)}
	startBenchServer(b, bed.Workloads[1].Namespace)
	// The connect benchmark opens tens of thousands of connections from
	// one address to one service; without TIME_WAIT reuse the clients
	// (workload, and the proxy on the node) run out of ephemeral ports and
	// the benchmark measures the port search instead of the datapath.
	for _, ns := range []*testbed.Namespace{bed.Workloads[0].Namespace, bed.Node} {
		if err := ns.Sysctl("net.ipv4.tcp_tw_reuse", "1"); err != nil {
			b.Fatal(err)
		}
		if err := ns.Sysctl("net.ipv4.ip_local_port_range", "1024 65000"); err != nil {
			b.Fatal(err)
		}
	}

	switch variant {
	case "direct", "ebpf":
		dp, err := datapath.New(
			datapath.WithPinDir(filepath.Join(testbed.BPFFS(b), "nodemesh")),
			datapath.WithNetNS(bed.Node.Path),
			datapath.WithMapSizes(smallMaps),
			datapath.WithLogger(slog.New(slog.DiscardHandler)),
		)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { dp.Uninstall() })
		var eps []model.Endpoint
		for _, w := range bed.Workloads {
			eps = append(eps, model.Endpoint{ID: uint16(w.Index + 1), Identity: ident(w.Index), IfIndex: w.HostIfIndex, IPs: []netip.Addr{w.IPv4, w.IPv6}})
		}
		if err := dp.SyncEndpoints(eps); err != nil {
			b.Fatal(err)
		}
		if err := dp.SyncAttachments([]int{bed.Workloads[0].HostIfIndex, bed.Workloads[1].HostIfIndex}); err != nil {
			b.Fatal(err)
		}
		if variant == "ebpf" {
			if err := dp.SyncPolicy(enforce(ingressOnly(ident(1)), redirectRow(ident(1), ident(0), model.Ingress))); err != nil {
				b.Fatal(err)
			}
			env.startProxy(b)
		}
	case "iptables":
		ctx := context.Background()
		node := bed.Node
		cmds := [][]string{
			{"ip", "-4", "rule", "add", "fwmark", "0x200/0xf00", "lookup", "2250", "pref", "90"},
			{"ip", "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "2250"},
			{"iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-m", "socket", "--transparent", "-j", "MARK", "--set-xmark", "0x200/0xf00"},
			{"iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-d", env.target.Addr().String(), "--dport", fmt.Sprint(appPort),
				"-j", "TPROXY", "--on-port", fmt.Sprint(proxyPort), "--tproxy-mark", "0x200/0xf00"},
		}
		for _, c := range cmds {
			if out, err := node.Run(ctx, c[0], c[1:]...); err != nil {
				b.Skipf("iptables TPROXY unavailable here: %v (%s)", err, out)
			}
		}
		env.startProxy(b)
	}
	return env
}

func (env *benchEnv) startProxy(b *testing.B) {
	p, err := env.bed.StartProxy(testbed.ProxyConfig{Port: proxyPort, Identity: func(netip.Addr) uint32 { return uint32(ident(0)) }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
}

// startBenchServer answers every 64-byte request with 64 bytes.
func startBenchServer(b *testing.B, ns *testbed.Namespace) {
	l, err := ns.Listen("tcp", fmt.Sprintf("[::]:%d", appPort))
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, benchMsg)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

func roundTrip(c net.Conn, buf []byte) error {
	if _, err := c.Write(buf); err != nil {
		return err
	}
	_, err := io.ReadFull(c, buf)
	return err
}

// benchConnect opens b.N connections (each with one request) from the
// client workload, several at a time, and returns connections per second.
func (env *benchEnv) benchConnect(b *testing.B) float64 {
	workers := 2 * runtime.NumCPU()
	client := env.bed.Workloads[0].Namespace
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The whole loop runs on a thread inside the client's
			// namespace, so every socket is created there.
			errs <- client.Do(func() error {
				buf := make([]byte, benchMsg)
				d := net.Dialer{Timeout: 5 * time.Second}
				for i := 0; i < n; i++ {
					c, err := d.Dial("tcp", env.target.String())
					if err != nil {
						return err
					}
					err = roundTrip(c, buf)
					c.Close()
					if err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return float64(b.N) / elapsed.Seconds()
}

// benchRequest runs b.N request/response exchanges over conns persistent
// connections and returns requests per second and latency percentiles.
func (env *benchEnv) benchRequest(b *testing.B, conns int) (float64, time.Duration, time.Duration) {
	client := env.bed.Workloads[0].Namespace
	cs := make([]net.Conn, conns)
	for i := range cs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := client.Dial(ctx, "tcp", env.target.String())
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	b.ResetTimer()
	start := time.Now()
	for i, c := range cs {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		lat[i] = make([]time.Duration, 0, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, benchMsg)
			for j := 0; j < n; j++ {
				t0 := time.Now()
				if err := roundTrip(c, buf); err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(p*float64(len(all)-1))]
	}
	return float64(b.N) / elapsed.Seconds(), pct(0.50), pct(0.99)
}
