// Command harness runs the official Gateway API conformance suite against
// nodemesh in Kubernetes mode, on a real kube-apiserver, on this machine,
// and tears everything down afterwards. `make conformance` runs it; see
// doc.go for what it builds and starts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "dns-standin" {
		if err := dnsStandIn(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "dns-standin:", err)
			os.Exit(1)
		}
		return
	}
	opts := options{}
	flag.StringVar(&opts.channel, "channel", "standard", "Gateway API CRD channel to install: standard or experimental")
	flag.StringVar(&opts.report, "report", "", "where the conformance report is written (relative to the repository root; default "+defaultReport("standard")+", or "+defaultReport("experimental")+" for the experimental channel)")
	flag.StringVar(&opts.binDir, "bin-dir", "bin", "directory holding the nodemesh binaries (relative to the repository root)")
	flag.StringVar(&opts.profiles, "profiles", "", "comma-separated conformance profiles to run; one report covers them all (default "+defaultProfiles("standard")+"; "+meshProfiles+" need -channel=experimental)")
	flag.StringVar(&opts.runTest, "run-test", "", "run only this conformance test (development aid; no report is written)")
	flag.StringVar(&opts.skipTests, "skip-tests", "", "comma-separated conformance tests to skip (development aid)")
	flag.DurationVar(&opts.timeout, "timeout", 40*time.Minute, "give up after this long")
	flag.BoolVar(&opts.keep, "keep-state", false, "keep the run's state directory (logs, pod output) after a successful run")
	flag.Parse()
	if opts.report == "" {
		opts.report = defaultReport(opts.channel)
	}
	if opts.profiles == "" {
		opts.profiles = defaultProfiles(opts.channel)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	start := time.Now()
	err := run(ctx, log, opts)
	log.Info("conformance run finished", "took", time.Since(start).Round(time.Second), "ok", err == nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		var ee *suiteFailed
		if errors.As(err, &ee) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type options struct {
	channel, report, binDir, runTest, skipTests, profiles string
	timeout                                               time.Duration
	keep                                                  bool
}

// suiteFailed means everything ran but the suite reported failures.
type suiteFailed struct{ err error }

func (e *suiteFailed) Error() string { return e.err.Error() }
func (e *suiteFailed) Unwrap() error { return e.err }

func abs(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// gatewayProfiles and meshProfiles are the suite's profiles nodemesh runs.
const (
	gatewayProfiles = "GATEWAY-HTTP,GATEWAY-GRPC,GATEWAY-TLS,GATEWAY-TCP,GATEWAY-UDP"
	meshProfiles    = "MESH-HTTP,MESH-GRPC"
)

// defaultProfiles are the profiles a run with the CRDs of channel runs:
// the GATEWAY-* ones. The mesh profiles need the experimental CRDs (XMesh
// is where the suite reads the mesh features) and are run on their own
// with -profiles=MESH-HTTP,MESH-GRPC (`make conformance-mesh`): they do
// not pass yet, and `make conformance` must say only what passes.
func defaultProfiles(string) string {
	return gatewayProfiles
}

// defaultReport is where a run with the CRDs of a channel writes its
// report: one file per channel, since each channel's run claims its own
// features.
func defaultReport(channel string) string {
	if channel == "experimental" {
		return "conformance/reports/gateway-api-v1.6.3-nodemesh-experimental-report.yaml"
	}
	return "conformance/reports/gateway-api-v1.6.3-nodemesh-report.yaml"
}
