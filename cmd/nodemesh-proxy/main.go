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
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/proxylib"
)

func main() {
	xdsAddress := flag.String("xds-address", "unix:///var/run/nodemesh/xds.sock", "xDS server: unix:///path/xds.sock or tcp://host:port")
	nodeID := flag.String("node-id", "", "node id reported to the xDS server (default: host name)")
	delta := flag.Bool("delta", false, "use the incremental (delta) xDS protocol")
	adminAddress := flag.String("admin-address", "127.0.0.1:9901", "admin endpoint address (/ready, /config_dump); empty disables it")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn, error")
	drain := flag.Duration("drain-timeout", 600*time.Second, "how long listeners drain on removal and shutdown")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "nodemesh-proxy: invalid --log-level %q\n", *logLevel)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	p, err := proxylib.New(
		proxylib.WithXDSAddress(*xdsAddress),
		proxylib.WithNodeID(*nodeID),
		proxylib.WithDelta(*delta),
		proxylib.WithAdminAddress(*adminAddress),
		proxylib.WithDrainTimeout(*drain),
		proxylib.WithLogger(logger),
	)
	if err != nil {
		logger.Error("starting proxy", "error", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := p.Run(ctx); err != nil {
		logger.Error("running proxy", "error", err)
		os.Exit(1)
	}
}
