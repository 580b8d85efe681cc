// Command nodemesh-agent is the per-node control plane: it reads user
// intent (in standalone mode, a directory of Kubernetes YAML; in Kubernetes
// mode, the API server), translates it and serves the result over xDS to
// the node's proxy. In Kubernetes mode it also reports what the node's
// proxies acknowledged in the node's NodeProxyStatus, and takes Gateway
// addresses from Gateway status, where nodemesh-controller assigns them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/mesh/agent"
	"github.com/nodemesh/nodemesh/mesh/provider/file"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nodemesh-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	configDir := flag.String("config-dir", "", "standalone mode: directory of Kubernetes YAML to watch")
	kubeMode := flag.Bool("kubernetes", false, "Kubernetes mode: watch the API server instead of a directory")
	kubeconfig := flag.String("kubeconfig", "", "Kubernetes mode: kubeconfig file (default: $KUBECONFIG, else in-cluster)")
	nodeName := flag.String("node-name", "", "Kubernetes mode: this node's name (default: $NODE_NAME, else the host name)")
	stateDir := flag.String("state-dir", "/var/run/nodemesh", "directory for the xDS socket (xds.sock) and the local API socket (agent.sock)")
	xdsTCP := flag.String("xds-tcp-address", "", "also serve xDS on this TCP address (e.g. 127.0.0.1:15010)")
	pool := flag.String("address-pool", agent.DefaultAddressPool.String(), "prefix Gateway addresses are assigned from")
	controller := flag.String("controller-name", "nodemesh.io/gateway-controller", "GatewayClass controllerName this agent programs")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("parsing --log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	switch {
	case *configDir == "" && !*kubeMode:
		return errors.New("either --config-dir (standalone mode) or --kubernetes is required")
	case *configDir != "" && *kubeMode:
		return errors.New("--config-dir and --kubernetes are mutually exclusive")
	}
	prefix, err := netip.ParsePrefix(*pool)
	if err != nil {
		return fmt.Errorf("parsing --address-pool: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv := server.New(server.WithLogger(log))
	defer srv.Stop(5 * time.Second)
	xdsSock := filepath.Join(*stateDir, "xds.sock")
	l, err := server.ListenUnix(xdsSock)
	if err != nil {
		return err
	}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(l) }()
	if *xdsTCP != "" {
		tl, err := server.ListenTCP(*xdsTCP)
		if err != nil {
			return err
		}
		go func() { errc <- srv.Serve(tl) }()
	}

	cfg := agent.Config{
		Publisher:      publish.New(srv),
		ControllerName: gwv1.GatewayController(*controller),
		AddressPool:    prefix,
		Logger:         log,
	}
	if *kubeMode {
		cfg.Addresses = kube.StatusAddresses{}
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	apiSock := filepath.Join(*stateDir, "agent.sock")
	go func() { errc <- a.ServeAPI(ctx, apiSock) }()

	if *kubeMode {
		if err := runKubernetes(ctx, log, a, *kubeconfig, *nodeName, gwv1.GatewayController(*controller), errc); err != nil {
			return err
		}
		log.Info("nodemesh-agent started in Kubernetes mode", "xds", xdsSock, "api", apiSock)
	} else {
		log.Info("nodemesh-agent started", "configDir", *configDir, "xds", xdsSock, "api", apiSock, "addressPool", prefix)
		prov := file.New(*configDir, file.WithLogger(log))
		go func() {
			errc <- prov.Watch(ctx, func(r *file.Result) {
				_ = a.Apply(ctx, r.Snapshot, r.Errors) // failures are logged and shown in status
			})
		}()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-errc:
		if err != nil {
			return err
		}
		return nil
	}
}
