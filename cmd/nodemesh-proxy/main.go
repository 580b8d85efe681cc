// Command nodemesh-proxy is nodemesh's builtin per-node L7 proxy: it
// connects to the agent's xDS server and serves the listeners it is given,
// including the transparent L7 policy listeners the datapath redirects to
// and their access logs to the agent. See package proxylib for the Envoy
// API subset it implements.
//
// Policy listeners need CAP_NET_ADMIN (IP_TRANSPARENT listeners, SO_MARK
// and original-source binding on upstream sockets); without it the
// listener is NACKed with the bind error and everything else keeps
// serving.
//
// Prometheus metrics (HTTP requests by code class and policy verdict,
// request latency, upstream connections and circuit breaker overflows by
// cluster, xDS state; internal/metrics lists them) are served on
// http://127.0.0.1:9964/metrics (--metrics-address; empty disables them),
// and on the admin endpoint at Envoy's /stats/prometheus, where the
// proxy's static envoy-admin cluster leads (proxylib).
//
// --workers n serves with n single-threaded processes instead of one
// process using every core: this one (worker 0: the xDS client, the admin
// and metrics endpoints, and a share of the connections) and n-1 copies
// of this binary it starts with --worker (same flags) and supervises.
// Each takes its own SO_REUSEPORT sockets on every listener, so the
// kernel spreads connections over them; every update is ACKed only once
// all applied it (package proxylib, "Worker processes", has the rules).
// Use one worker per core the proxy is given: on two cores GOMAXPROCS=2
// spent about a fifth of the proxy's CPU in the Go scheduler, which n
// schedulers of one P each avoid. The default stays one process: with
// workers circuit breaker thresholds, upstream pools and memory are per
// process. With workers /metrics labels every series worker="<i>"
// rather than summing them: Go runtime and process metrics do not add up,
// and an uneven spread is worth seeing (sum without (worker) gives the
// node's totals); the xDS state comes from worker 0 only.
//
// --event-loops (default auto) serves plain-TCP HTTP/1.1 connections on
// event loops of the proxy's own (package evloop; proxylib/hcm, "Event
// loops") rather than a goroutine each. auto runs one loop per CPU the
// process may run on; under a CPU limit (cgroup v2 cpu.max, or on cgroup
// v1 what Go's GOMAXPROCS makes of it) one fewer than the limit rounded
// up, and with GOMAXPROCS set below the CPU count one fewer than it, at
// least one either way, so the loops and the P for the rest fit in the
// budget; none with --workers above 1. n runs n (not with --workers); 0
// runs none. Where the budget is one CPU (one CPU to run on, GOMAXPROCS=1,
// or a limit of at most one CPU) the one loop shares the only P with the
// rest of the process: GOMAXPROCS is 1 (lowered from the 2 Go gives a
// small limit, never from a GOMAXPROCS set by hand) and the loop parks in
// the runtime's poller when idle (evloop's shared mode). Otherwise each busy loop keeps a P of its own,
// so GOMAXPROCS is raised to n+1 when it is lower; GODEBUG asyncpreemptoff
// (or gccheckmark) rules such loops out, and auto then runs none, said in
// a warning. What a loop does not serve itself (TLS, HTTP/2, upgrades,
// request bodies not buffered, TLS upstreams, retries, mirrors, a logged
// request with a body, a response whose body did not come with its head
// or is over 8 KiB) runs on goroutines as with 0. Why loops by default: in
// make bench runs on one core they served as much as goroutines or more at
// 16 and 128 connections (0.98–1.10× nginx against 0.89–0.98×), and on two
// cores more than goroutines or our own two workers; at one connection
// they were level with goroutines or below them (0.95× nginx against
// 0.99× in the 2026-12-08 run), see BENCHMARKS.md. Sharing the P on one CPU keeps
// HTTP/2 and TLS, which run on goroutines, from being split over two
// threads there.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/internal/metrics"
	"github.com/nodemesh/nodemesh/proxylib"
	"github.com/nodemesh/nodemesh/proxylib/evloop"
)

func main() {
	xdsAddress := flag.String("xds-address", "unix:///var/run/nodemesh/xds.sock", "xDS server: unix:///path/xds.sock or tcp://host:port")
	nodeID := flag.String("node-id", "", "node id reported to the xDS server (default: host name)")
	delta := flag.Bool("delta", false, "use the incremental (delta) xDS protocol")
	adminAddress := flag.String("admin-address", "127.0.0.1:9901", "admin endpoint address (/ready, /config_dump); empty disables it")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn, error")
	drain := flag.Duration("drain-timeout", 600*time.Second, "how long listeners drain on removal and shutdown")
	metricsAddress := flag.String("metrics-address", defaultMetricsAddress, "serve Prometheus metrics on http://<address>/metrics; empty disables them")
	workers := flag.Int("workers", 1, "serve with this many single-threaded processes (1: one process using every core GOMAXPROCS allows); see the package comment")
	asWorker := flag.Bool("worker", false, "internal: run as a worker of a parent nodemesh-proxy (set by the parent)")
	eventLoops := loopsFlag{auto: true}
	flag.Var(&eventLoops, "event-loops", fmt.Sprintf("serve plain-TCP HTTP/1.1 connections on this many event loops (0..%d), raising GOMAXPROCS to one more when it is lower, except one loop on a one-CPU budget, which shares GOMAXPROCS=1; 0: a goroutine per connection; auto: one loop per CPU, fewer under a CPU limit, none with --workers above 1 (see the package comment)", proxylib.MaxEventLoops))
	pprofAddress := flag.String("pprof-address", "", "serve Go runtime profiles (/debug/pprof/: CPU, heap, allocs, block, mutex, trace) on this address; empty (the default) disables it")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "nodemesh-proxy: invalid --log-level %q\n", *logLevel)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if *workers < 1 || *workers > maxWorkers {
		fmt.Fprintf(os.Stderr, "nodemesh-proxy: --workers must be 1..%d\n", maxWorkers)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := []proxylib.Option{
		proxylib.WithXDSAddress(*xdsAddress),
		proxylib.WithNodeID(*nodeID),
		proxylib.WithDelta(*delta),
		proxylib.WithAdminAddress(*adminAddress),
		proxylib.WithDrainTimeout(*drain),
	}
	if *asWorker {
		runtime.GOMAXPROCS(1)
		logger = logger.With("worker", os.Getenv(workerIndexEnv))
		opts = append(opts, proxylib.WithLogger(logger), proxylib.WithWorkerMetrics(writeWorkerMetrics))
		if err := proxylib.RunWorker(ctx, opts...); err != nil {
			logger.Error("running worker", "error", err)
			os.Exit(1)
		}
		return
	}
	opts = append(opts, proxylib.WithLogger(logger), adminMetrics(logger, *workers))
	loops, err := eventLoops.count(*workers)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nodemesh-proxy: %v\n", err)
		os.Exit(2)
	}
	if why := evloop.Usable(); why != nil && eventLoops.auto && *workers <= 1 && loops == 0 {
		logger.Warn("serving on a goroutine per connection: event loops cannot run here", "reason", why)
	}
	if loops > 0 {
		proxylib.SetProcsForLoops(loops)
		opts = append(opts, proxylib.WithEventLoops(loops))
	}
	if *workers > 1 {
		// Every process, this one included, runs one P: see doc.go.
		runtime.GOMAXPROCS(1)
		opts = append(opts, proxylib.WithWorkers(*workers, workerCommand))
	}
	p, err := proxylib.New(opts...)
	if err != nil {
		logger.Error("starting proxy", "error", err)
		os.Exit(1)
	}
	if *pprofAddress != "" {
		if err := servePprof(*pprofAddress, logger); err != nil {
			logger.Error("starting pprof endpoint", "error", err)
			os.Exit(1)
		}
	}
	ml, err := metrics.Listen(*metricsAddress, metrics.FlagIsDefault(flag.CommandLine, "metrics-address"), logger)
	if err != nil {
		logger.Error("starting metrics endpoint", "error", err)
		os.Exit(1)
	}
	if ml != nil {
		go func() {
			if err := metrics.Serve(ctx, ml, proxyGatherer(p, *workers), logger); err != nil {
				logger.Warn("metrics endpoint stopped", "error", err)
			}
		}()
	}
	if err := p.Run(ctx); err != nil {
		logger.Error("running proxy", "error", err)
		os.Exit(1)
	}
}

// servePprof serves the runtime profiles on their own listener, apart from
// the admin endpoint, so profiling is opted into explicitly. Bind it to
// loopback.
func servePprof(addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for pprof on %s: %w", addr, err)
	}
	// The block and mutex profiles record nothing unless sampled. The hot
	// paths neither block on channels nor contend on locks, so sampling
	// costs little; it shows when they start to.
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(100)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil {
			logger.Warn("pprof endpoint stopped", "error", err)
		}
	}()
	return nil
}
