package hubble

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCLIVersion builds (or finds) the hubble CLI and checks it is the
// pinned Cilium release's.
func TestCLIVersion(t *testing.T) {
	bin := ForTest(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ver := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/cilium/cilium")
	ver.Dir = root + "/" + ModuleDir
	want, err := ver.Output()
	if err != nil {
		t.Fatalf("reading the pinned Cilium version: %v", err)
	}
	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("hubble version: %v\n%s", err, out)
	}
	if v := strings.TrimPrefix(strings.TrimSpace(string(want)), "v"); !strings.Contains(string(out), v) {
		t.Fatalf("hubble version printed %q, want the pinned %s", out, v)
	}
}
