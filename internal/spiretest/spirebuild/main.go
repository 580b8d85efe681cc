// Command spirebuild builds spire-server and spire-agent for the
// auth/spire integration tests into the cache those tests read
// (conformance/.cache, see package spiretest), or finds them already built
// for the current inputs, and prints their paths. `make spire` runs it, and
// `make integration` runs that first, so the tests find the binaries
// instead of building them under their own timeout.
//
// It runs from anywhere inside the repository.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/internal/spiretest"
)

func main() {
	if err := run(); err != nil {
		slog.Error("building SPIRE", "error", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := spiretest.RepoRoot()
	if err != nil {
		return err
	}
	start := time.Now()
	bins, cached := spiretest.Find(root)
	if !cached {
		fmt.Fprintln(os.Stderr, "spirebuild: building spire-server and spire-agent (cached afterwards; cold: the whole of SPIRE's dependencies)")
		if bins, err = spiretest.Build(ctx, root, os.Stderr); err != nil {
			return err
		}
	}
	how := "cached"
	if !cached {
		how = "built in " + time.Since(start).Round(time.Second).String()
	}
	fmt.Printf("spire-server %s\nspire-agent %s\n(%s)\n", bins.Server, bins.Agent, how)
	return nil
}
