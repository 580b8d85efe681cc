package chart

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/nodemesh/nodemesh/internal/modbuild"
)

// HelmVersion is the helm release internal/tools/helm pins; it names the
// build's cache directory, so it must match that go.mod.
const HelmVersion = "v4.3.2"

// helmModule is the nested module helm is built from, relative to the
// repository root.
const helmModule = "internal/tools/helm"

// Dir is the chart, relative to the repository root.
const Dir = "charts/nodemesh"

// RepoRoot finds the repository root from the working directory.
func RepoRoot() (string, error) { return modbuild.RepoRoot(helmModule) }

// Helm returns the helm binary built from the pinned module, building it
// on first use into conformance/.cache/helm-<version>/ (parallel builders
// share one build through the directory's lock).
func Helm(ctx context.Context, root string) (string, error) {
	dir := filepath.Join(root, "conformance", ".cache", "helm-"+HelmVersion)
	bin := filepath.Join(dir, "helm")
	err := modbuild.Locked(dir, func() error {
		if _, err := os.Stat(bin); err == nil {
			return nil
		}
		// Built to a temporary name and renamed, so a killed build never
		// leaves a truncated binary that the Stat above would take.
		tmp := bin + ".tmp"
		cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, "helm.sh/helm/v4/cmd/helm")
		cmd.Dir = filepath.Join(root, helmModule)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building helm %s: %w\n%s", HelmVersion, err, out)
		}
		return os.Rename(tmp, bin)
	})
	if err != nil {
		return "", err
	}
	return bin, nil
}
