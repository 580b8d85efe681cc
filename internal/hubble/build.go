package hubble

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/modbuild"
)

// ModuleDir is the nested module the CLI is built from, relative to the
// repository root.
const ModuleDir = "internal/tools/hubble"

// cacheDir holds builds, relative to the repository root (gitignored).
const cacheDir = "conformance/.cache"

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

// key hashes every input of the build (modbuild.Key): the nested module's
// go.mod, go.sum and Go files, the build flags and the Go toolchain
// (version and target).
func key(root string) (string, error) {
	return modbuild.Key(root, ModuleDir, fmt.Sprintf("flags %q\n", buildFlags), "GOVERSION", "GOOS", "GOARCH")
}

func buildDir(root, k string) string { return filepath.Join(root, cacheDir, "hubble-"+k) }

// Find returns the path of the CLI if a build for the current inputs is
// complete.
func Find(root string) (string, bool) {
	k, err := key(root)
	if err != nil {
		return "", false
	}
	dir := buildDir(root, k)
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		return "", false
	}
	return filepath.Join(dir, "hubble"), true
}

// Build builds the CLI for the current inputs unless that build is
// complete, and returns its path. Build output goes to log.
func Build(ctx context.Context, root string, log io.Writer) (string, error) {
	k, err := key(root)
	if err != nil {
		return "", err
	}
	dir := buildDir(root, k)
	var bin string
	err = modbuild.Locked(dir, func() (err error) {
		bin, err = build(ctx, root, dir, log)
		return err
	})
	return bin, err
}

// build runs the build into dir, holding its lock.
func build(ctx context.Context, root, dir string, log io.Writer) (string, error) {
	if p, ok := Find(root); ok {
		return p, nil
	}
	mod := filepath.Join(root, ModuleDir)
	ver := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/cilium/cilium")
	ver.Dir = mod
	v, err := ver.Output()
	if err != nil {
		return "", fmt.Errorf("reading the pinned Cilium version: %w", err)
	}
	args := append([]string{"build"}, buildFlags...)
	args = append(args, "-ldflags", "-X "+versionVar+"="+strings.TrimSpace(string(v)), "-o", filepath.Join(dir, "hubble"), pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = mod
	cmd.Stdout, cmd.Stderr = log, log
	fmt.Fprintf(log, "hubble: go %s\n", strings.Join(args, " "))
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the hubble CLI: %w", err)
	}
	fmt.Fprintf(log, "hubble: built in %s\n", time.Since(start).Round(time.Second))
	if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644); err != nil {
		return "", fmt.Errorf("marking build complete: %w", err)
	}
	// Earlier builds will not be used again.
	if old, err := filepath.Glob(filepath.Join(root, cacheDir, "hubble-*")); err == nil {
		for _, o := range old {
			if o != dir {
				_ = os.RemoveAll(o)
			}
		}
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
