package controlplane

import (
	"context"
	"fmt"
	"io"
	"os"
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

// RepoRoot finds the repository root from the working directory (tests
// run in their package directory).
func RepoRoot() (string, error) { return modbuild.RepoRoot(ModuleDir) }

// cache is where the programs are built (conformance/.cache/kube-<key>):
// the key hashes the nested module's go.mod, go.sum and Go files, and the
// Go toolchain version. A build's marker holds the Gateway API CRD
// directory, which lives in the Go module cache: a build whose CRDs were
// cleaned away is built again.
func cache(root string) modbuild.Cache {
	return modbuild.Cache{
		Root: root, Module: ModuleDir, Prefix: "kube", GoEnv: []string{"GOVERSION"},
		Usable: func(_ string, note []byte) bool {
			_, err := os.Stat(crdDir(note))
			return err == nil
		},
	}
}

// crdDir reads the CRD directory from a build's marker.
func crdDir(note []byte) string { return strings.TrimSpace(string(note)) }

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
	dir, note, ok := cache(root).Find()
	if !ok {
		return nil, false
	}
	return binaries(dir, crdDir(note)), true
}

// Build builds every binary into the cache directory for the current
// inputs, unless that build is already complete, and returns them. Build
// output goes to log. Concurrent callers (parallel test packages) wait on
// a file lock and share one build.
func Build(ctx context.Context, root string, log io.Writer) (*Binaries, error) {
	c := cache(root)
	dir, note, err := c.Build(func(dir string) ([]byte, error) {
		if err := c.Go(ctx, log, "build", "-o", dir+string(filepath.Separator),
			"./cmd/etcd", "./cmd/kube-apiserver", "./cmd/kube-controller-manager",
			"./cmd/kube-proxy", "./cmd/kubectl",
			"sigs.k8s.io/gateway-api/conformance/echo-basic"); err != nil {
			return nil, err
		}
		if err := c.Go(ctx, log, "test", "-c", "-o", filepath.Join(dir, "conformance.test"), "./suite"); err != nil {
			return nil, err
		}
		mod, err := c.GoOutput(ctx, "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
		if err != nil {
			return nil, fmt.Errorf("locating the Gateway API module: %w", err)
		}
		return []byte(filepath.Join(mod, "config", "crd") + "\n"), nil
	})
	if err != nil {
		return nil, err
	}
	return binaries(dir, crdDir(note)), nil
}
