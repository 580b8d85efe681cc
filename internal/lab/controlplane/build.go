package controlplane

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nodemesh/nodemesh/internal/modbuild"
)

// Binaries are the programs built from the nested module.
type Binaries struct {
	Etcd              string
	APIServer         string
	ControllerManager string
	// KubeProxy is the Service proxy the lab runs on every node.
	KubeProxy string
	// Kubectl is the command-line client of the same release.
	Kubectl string
	// EchoBasic is the conformance suite's own backend.
	EchoBasic string
	// Suite is the compiled conformance test binary.
	Suite string
	// CRDDir holds the Gateway API CRD manifests of the version the
	// nested module pins, with standard/ and experimental/ channels.
	CRDDir string
}

// ModuleDir is the nested module, relative to the repository root.
const ModuleDir = "conformance/kube"

// cacheDir holds build outputs, relative to the repository root
// (gitignored).
const cacheDir = "conformance/.cache"

// RepoRoot finds the repository root from the working directory (tests
// run in their package directory).
func RepoRoot() (string, error) { return modbuild.RepoRoot(ModuleDir) }

// key hashes every input of the build (modbuild.Key): the nested module's
// go.mod, go.sum and Go files, and the Go toolchain version.
func key(root string) (string, error) { return modbuild.Key(root, ModuleDir, "", "GOVERSION") }

func binaries(dir, crdDir string) *Binaries {
	return &Binaries{
		Etcd:              filepath.Join(dir, "etcd"),
		APIServer:         filepath.Join(dir, "kube-apiserver"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
		KubeProxy:         filepath.Join(dir, "kube-proxy"),
		Kubectl:           filepath.Join(dir, "kubectl"),
		EchoBasic:         filepath.Join(dir, "echo-basic"),
		Suite:             filepath.Join(dir, "conformance.test"),
		CRDDir:            crdDir,
	}
}

// Find returns the binaries if a build for the current inputs is complete.
func Find(root string) (*Binaries, bool) {
	k, err := key(root)
	if err != nil {
		return nil, false
	}
	dir := filepath.Join(root, cacheDir, "kube-"+k)
	b, err := os.ReadFile(filepath.Join(dir, "complete"))
	if err != nil {
		return nil, false
	}
	bins := binaries(dir, strings.TrimSpace(string(b)))
	// The CRDs live in the module cache, which may have been cleaned.
	if _, err := os.Stat(bins.CRDDir); err != nil {
		return nil, false
	}
	return bins, true
}

// Build builds every binary into the cache directory for the current
// inputs, unless that build is already complete, and returns them. Build
// output goes to log. Concurrent callers (parallel test packages) wait on
// a file lock and share one build.
func Build(ctx context.Context, root string, log io.Writer) (*Binaries, error) {
	k, err := key(root)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, cacheDir, "kube-"+k)
	var bins *Binaries
	err = modbuild.Locked(dir, func() (err error) {
		bins, err = build(ctx, root, dir, log)
		return err
	})
	return bins, err
}

// build runs the build into dir, holding its lock.
func build(ctx context.Context, root, dir string, log io.Writer) (*Binaries, error) {
	if b, ok := Find(root); ok {
		return b, nil
	}
	mod := filepath.Join(root, ModuleDir)
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = mod
		cmd.Stdout, cmd.Stderr = log, log
		fmt.Fprintf(log, "controlplane: go %s\n", strings.Join(args, " "))
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("running go %s: %w", strings.Join(args, " "), err)
		}
		return nil
	}
	if err := run("build", "-o", dir+string(filepath.Separator),
		"./cmd/etcd", "./cmd/kube-apiserver", "./cmd/kube-controller-manager",
		"./cmd/kube-proxy", "./cmd/kubectl",
		"sigs.k8s.io/gateway-api/conformance/echo-basic"); err != nil {
		return nil, err
	}
	if err := run("test", "-c", "-o", filepath.Join(dir, "conformance.test"), "./suite"); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = mod
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("locating the Gateway API module: %w", err)
	}
	crdDir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd")
	if err := os.WriteFile(filepath.Join(dir, "complete"), []byte(crdDir+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("marking build complete: %w", err)
	}
	// Builds for earlier inputs are several hundred megabytes each and
	// will not be used again.
	if old, err := filepath.Glob(filepath.Join(root, cacheDir, "kube-*")); err == nil {
		for _, o := range old {
			if o != dir {
				_ = os.RemoveAll(o)
			}
		}
	}
	return binaries(dir, crdDir), nil
}
