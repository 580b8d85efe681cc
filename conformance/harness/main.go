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
	"strings"
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
	flag.StringVar(&opts.report, "report", "", "where the report of the GATEWAY-* profiles is written (relative to the repository root; default "+defaultReport("standard")+", or "+defaultReport("experimental")+" for the experimental channel)")
	flag.StringVar(&opts.meshReport, "mesh-report", meshReport, "where the report of the MESH-* profiles is written (relative to the repository root)")
	flag.StringVar(&opts.binDir, "bin-dir", "bin", "directory holding the nodemesh binaries (relative to the repository root)")
	flag.StringVar(&opts.profiles, "profiles", "", "comma-separated conformance profiles to run (default "+defaultProfiles("standard")+", and "+defaultProfiles("experimental")+" with -channel=experimental; "+meshProfiles+" need it)")
	flag.StringVar(&opts.runTest, "run-test", "", "run only this conformance test (development aid; no report is written)")
	flag.StringVar(&opts.skipTests, "skip-tests", "", "comma-separated conformance tests to skip (development aid)")
	flag.DurationVar(&opts.timeout, "timeout", 40*time.Minute, "give up after this long")
	flag.BoolVar(&opts.keep, "keep-state", false, "keep the run's state directory (logs, pod output) after a successful run")
	flag.IntVar(&opts.eventLoops, "event-loops", -1, "run the proxy with this many event loops (chart proxy.eventLoops, nodemesh-proxy --event-loops), 0 for a goroutine per connection; -1: the chart's default (auto, one loop per CPU); a count needs -report and -mesh-report, so the project's reports stay those of the default proxy")
	reportSet, meshReportSet := false, false
	flag.Parse()
	flag.Visit(func(f *flag.Flag) {
		reportSet = reportSet || f.Name == "report"
		meshReportSet = meshReportSet || f.Name == "mesh-report"
	})
	// 256: nodemesh-proxy's bound, which the chart's schema holds.
	if opts.eventLoops < -1 || opts.eventLoops > 256 || opts.eventLoops >= 0 && !(reportSet && meshReportSet) {
		fmt.Fprintln(os.Stderr, "harness: -event-loops must be -1 (the chart's default) or a count 0..256, and a count needs -report and -mesh-report (the reports in conformance/reports are the default proxy's)")
		os.Exit(1)
	}
	if opts.report == "" {
		opts.report = defaultReport(opts.channel)
	}
	if opts.profiles == "" {
		opts.profiles = defaultProfiles(opts.channel)
	}
	if strings.Contains(opts.profiles, "MESH-") && opts.channel != "experimental" {
		fmt.Fprintln(os.Stderr, "harness: the MESH-* profiles need -channel=experimental (the suite reads mesh features from an XMesh)")
		os.Exit(1)
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
	channel, report, meshReport, binDir, runTest, skipTests, profiles string
	timeout                                                           time.Duration
	keep                                                              bool
	eventLoops                                                        int
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

// gatewayProfiles and meshProfiles are the suite's profiles nodemesh runs;
// ciMeshProfiles are the mesh profiles that pass, which the experimental
// run (`make conformance`) runs with the gateway profiles.
const (
	gatewayProfiles = "GATEWAY-HTTP,GATEWAY-GRPC,GATEWAY-TLS,GATEWAY-TCP,GATEWAY-UDP"
	meshProfiles    = "MESH-HTTP,MESH-GRPC"
	ciMeshProfiles  = "MESH-HTTP,MESH-GRPC"
)

// defaultProfiles are the profiles a run with the CRDs of channel runs:
// the GATEWAY-* ones, and with the experimental CRDs (XMesh is where the
// suite reads the mesh features) the mesh profiles that pass. One suite
// run covers them (it runs every test whose features are claimed,
// whatever the profiles), and the harness splits its report in two
// (report.go). `make conformance-mesh` runs both mesh profiles.
func defaultProfiles(channel string) string {
	if channel == "experimental" {
		return gatewayProfiles + "," + ciMeshProfiles
	}
	return gatewayProfiles
}

// meshReport is where the report of the mesh profiles goes (they run
// with the experimental CRDs only).
const meshReport = "conformance/reports/gateway-api-v1.6.3-nodemesh-mesh-report.yaml"

// defaultReport is where a run with the CRDs of a channel writes the
// report of its gateway profiles: one file per channel, since each
// channel's run claims its own features.
func defaultReport(channel string) string {
	if channel == "experimental" {
		return "conformance/reports/gateway-api-v1.6.3-nodemesh-experimental-report.yaml"
	}
	return "conformance/reports/gateway-api-v1.6.3-nodemesh-report.yaml"
}
