package hubble

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/modbuild"
)

// ModuleDir is the nested module the CLI is built from, relative to the
// repository root.
const ModuleDir = "internal/tools/hubble"

// pkg is the CLI's main package; versionVar the variable its `version`
// command prints (set the way Cilium's release builds set it).
const (
	pkg        = "github.com/cilium/cilium/hubble"
	versionVar = "github.com/cilium/cilium/hubble/pkg.Version"
)

// RepoRoot finds the repository root from the working directory (tests
// run in their package directory).
func RepoRoot() (string, error) { return modbuild.RepoRoot(ModuleDir) }

// buildFlags are part of the cache key.
var buildFlags []string

// cache is where the CLI is built (conformance/.cache/hubble-<key>): the
// key hashes the nested module's go.mod, go.sum and Go files, the build
// flags and the Go toolchain (version and target).
func cache(root string) modbuild.Cache {
	return modbuild.Cache{
		Root: root, Module: ModuleDir, Prefix: "hubble",
		Extra: fmt.Sprintf("flags %q\n", buildFlags), GoEnv: []string{"GOVERSION", "GOOS", "GOARCH"},
	}
}

// Find returns the path of the CLI if a build for the current inputs is
// complete.
func Find(root string) (string, bool) {
	dir, _, ok := cache(root).Find()
	if !ok {
		return "", false
	}
	return filepath.Join(dir, "hubble"), true
}

// Build builds the CLI for the current inputs unless that build is
// complete, and returns its path. Build output goes to log.
func Build(ctx context.Context, root string, log io.Writer) (string, error) {
	c := cache(root)
	dir, _, err := c.Build(func(dir string) ([]byte, error) {
		v, err := c.GoOutput(ctx, "list", "-m", "-f", "{{.Version}}", "github.com/cilium/cilium")
		if err != nil {
			return nil, fmt.Errorf("reading the pinned Cilium version: %w", err)
		}
		args := append([]string{"build"}, buildFlags...)
		args = append(args, "-ldflags", "-X "+versionVar+"="+v, "-o", filepath.Join(dir, "hubble"), pkg)
		start := time.Now()
		if err := c.Go(ctx, log, args...); err != nil {
			return nil, fmt.Errorf("building the hubble CLI: %w", err)
		}
		fmt.Fprintf(log, "hubble: built in %s\n", time.Since(start).Round(time.Second))
		return nil, nil
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "hubble"), nil
}

// ForTest returns the CLI's path: the cached build, or a fresh one. A
// missing CLI is built, never skipped, and a failed build fails the test.
func ForTest(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := Find(root); ok {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	p, err := Build(ctx, root, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
