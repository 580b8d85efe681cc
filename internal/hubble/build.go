package hubble

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
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
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ModuleDir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding repository root: no " + ModuleDir + "/go.mod above the working directory")
		}
		dir = parent
	}
}

// buildFlags are part of the cache key.
var buildFlags []string

// key hashes every input of the build.
func key(root string) (string, error) {
	h := sha256.New()
	mod := filepath.Join(root, ModuleDir)
	var files []string
	err := filepath.WalkDir(mod, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if n := d.Name(); n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing build inputs: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("hashing build inputs: %w", err)
		}
		rel, _ := filepath.Rel(mod, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("reading Go version: %w", err)
	}
	h.Write(out)
	fmt.Fprintln(h, strings.Join(buildFlags, " "))
	return hex.EncodeToString(h.Sum(nil))[:16], nil
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating build cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("taking build lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
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
