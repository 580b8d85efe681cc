package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/modbuild"
)

// MeshBinaries are the nodemesh programs a lab runs.
var MeshBinaries = []string{"./cmd/nodemesh", "./cmd/nodemesh-lab", "./cmd/nodemesh-agent", "./cmd/nodemesh-proxy", "./cmd/nodemesh-controller"}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// BuildMesh builds the nodemesh programs of the working tree into
// conformance/.cache/nodemesh-bin (once per process; parallel test
// binaries share it through a file lock) and returns that directory, so
// a test runs the code it was compiled with.
func BuildMesh(root string) (string, error) {
	buildOnce.Do(func() {
		dir := filepath.Join(root, "conformance", ".cache", "nodemesh-bin")
		buildErr = modbuild.Locked(dir, func() error {
			cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, MeshBinaries...)...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("building nodemesh: %w\n%s", err, out)
			}
			return nil
		})
		if buildErr == nil {
			binDir = dir
		}
	})
	return binDir, buildErr
}

// EventLoopsEnv, set to n, runs every lab a test starts with its
// proxies on n event loops (the chart's proxy.eventLoops, laid over the
// test's own values); 0 serves every connection on a goroutine of its
// own, so the lab's scenarios cover that serving mode too (by default the
// chart's auto runs one loop per CPU).
const EventLoopsEnv = "NODEMESH_LAB_EVENT_LOOPS"

// ForTest starts a lab for a test (root only) and closes it when the test
// ends. Like controlplane.ForTest it skips when the Kubernetes binaries
// are not built and NODEMESH_INTEGRATION is not 1, and builds them when it
// is. o.Dir, o.Binaries and o.BinDir are filled in when empty.
func ForTest(t testing.TB, o Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root: it creates network namespaces")
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if o.Binaries == nil {
		o.Binaries = controlplane.BinariesForTest(t, root)
	}
	if o.BinDir == "" {
		if o.BinDir, err = BuildMesh(root); err != nil {
			t.Fatal(err)
		}
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if v := os.Getenv(EventLoopsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("%s=%q: want a count, 0 or more", EventLoopsEnv, v)
		}
		base := o.ChartValues
		if base == nil {
			base = map[string]any{}
		}
		o.ChartValues = mergeValues(base, map[string]any{"proxy": map[string]any{"eventLoops": n}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab with %d node(s) up in %s", len(l.Nodes), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		// Before Close: stopping the API server makes clients fail in
		// other ways, never with a refusal.
		lines, err := l.Forbidden()
		if err != nil {
			t.Errorf("reading the mesh's logs: %v", err)
		}
		for _, line := range lines {
			t.Errorf("the chart's roles refused the mesh a request: %s", line)
		}
		if err := l.Close(); err != nil {
			t.Errorf("closing the lab: %v", err)
		}
	})
	return l
}
