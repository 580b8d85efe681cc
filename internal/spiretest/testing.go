package spiretest

import (
	"context"
	"os"
	"testing"
	"time"
)

// IntegrationEnv is the environment variable that makes ForTest build the
// binaries instead of skipping.
const IntegrationEnv = "NODEMESH_INTEGRATION"

// BinariesForTest returns the SPIRE binaries, building them (cached) when
// NODEMESH_INTEGRATION=1, and skips the test when they are not built and
// it is not set.
func BinariesForTest(t testing.TB) *Binaries {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if bins, ok := Find(root); ok {
		return bins
	}
	if os.Getenv(IntegrationEnv) != "1" {
		t.Skipf("SPIRE binaries are not built; run `%s=1 go test ./auth/spire/...` (or `make integration`) to build them (cached) and run this test", IntegrationEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	start := time.Now()
	bins, err := Build(ctx, root, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SPIRE binaries ready in %s", time.Since(start).Round(time.Second))
	return bins
}

// ForTest starts a spire-server (see ServerOptions; Binaries and Dir are
// filled in) and stops it with every agent when the test ends, printing
// their logs' ends if the test failed.
func ForTest(t testing.TB, o ServerOptions) *Server {
	t.Helper()
	o.Binaries = BinariesForTest(t)
	if o.Dir == "" {
		// t.TempDir's path repeats the test name; socket paths must stay
		// under 108 bytes.
		dir, err := os.MkdirTemp("", "spire")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		o.Dir = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := StartServer(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.Logs(40))
		}
		s.Stop()
	})
	return s
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
