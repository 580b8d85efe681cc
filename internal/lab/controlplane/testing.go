package controlplane

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/api"
)

// IntegrationEnv is the environment variable that makes ForTest build the
// binaries instead of skipping.
const IntegrationEnv = "NODEMESH_INTEGRATION"

// ForTest starts a cluster (etcd + kube-apiserver) with the Gateway API
// CRDs of the given channel and nodemesh's own CRDs installed, and stops
// it when the test ends. It skips the test when the binaries are not built
// and NODEMESH_INTEGRATION is not 1.
func ForTest(t testing.TB, channel string) *Cluster {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bins := BinariesForTest(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Binaries: bins, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	crds, err := bins.GatewayCRDs(channel)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, c.Config, crds); err != nil {
		t.Fatalf("installing Gateway API CRDs: %v", err)
	}
	if err := Apply(ctx, c.Config, api.CRDManifests()); err != nil {
		t.Fatalf("installing nodemesh CRDs: %v", err)
	}
	return c
}

// BinariesForTest returns the built Kubernetes binaries. It skips the
// test when they are not built and NODEMESH_INTEGRATION is not 1, and
// builds them when it is.
func BinariesForTest(t testing.TB, root string) *Binaries {
	t.Helper()
	bins, ok := Find(root)
	if ok {
		return bins
	}
	if os.Getenv(IntegrationEnv) != "1" {
		t.Skipf("Kubernetes binaries are not built; run `make integration` (or set %s=1) to build them and run this test", IntegrationEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	bins, err := Build(ctx, root, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
