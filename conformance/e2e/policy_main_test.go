package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib"
)

// The policy tests run the builtin proxy as a child process inside the
// test bed's node namespace (its transparent listeners must live where the
// datapath redirects to). The child is this test binary, started with
// proxyChildEnv naming the agent's xDS socket.
const (
	proxyChildEnv     = "NODEMESH_E2E_PROXY_XDS"
	proxyChildNodeEnv = "NODEMESH_E2E_PROXY_NODE"
	// proxyChildLoopsEnv, when set, is the child's event-loop count
	// (nodemesh-proxy --event-loops n, 0 for none); unset, the child
	// runs nodemesh-proxy's default (one loop per CPU).
	proxyChildLoopsEnv = "NODEMESH_E2E_PROXY_EVENT_LOOPS"
)

func TestMain(m *testing.M) {
	if xds := os.Getenv(proxyChildEnv); xds != "" {
		os.Exit(runProxyChild(xds, os.Getenv(proxyChildNodeEnv), os.Getenv(proxyChildLoopsEnv)))
	}
	if spec := os.Getenv(podGetEnv); spec != "" {
		os.Exit(runPodGet(spec))
	}
	if cfg := os.Getenv(hopGenEnv); cfg != "" {
		os.Exit(runHopGenChild(cfg))
	}
	if ports := os.Getenv(hopBackendEnv); ports != "" {
		os.Exit(runHopBackendChild(ports))
	}
	os.Exit(m.Run())
}

// runProxyChild runs the proxy until SIGTERM; loops, when set, is its
// event-loop count, else nodemesh-proxy's default, with GOMAXPROCS raised
// as nodemesh-proxy raises it.
func runProxyChild(xds, node, loops string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts := []proxylib.Option{
		proxylib.WithXDSAddress(xds),
		proxylib.WithNodeID(node),
		proxylib.WithAdminAddress(""),
		proxylib.WithDrainTimeout(time.Second),
		proxylib.WithLogger(log),
	}
	n := proxylib.DefaultEventLoops(1)
	if loops != "" {
		var err error
		if n, err = strconv.Atoi(loops); err != nil || n < 0 || n > proxylib.MaxEventLoops {
			fmt.Fprintf(os.Stderr, "%s=%q: want a count 0..%d\n", proxyChildLoopsEnv, loops, proxylib.MaxEventLoops)
			return 1
		}
	}
	proxylib.SetProcsForLoops(n)
	opts = append(opts, proxylib.WithEventLoops(n))
	p, err := proxylib.New(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting proxy:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := p.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "running proxy:", err)
		return 1
	}
	return 0
}
