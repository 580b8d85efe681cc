package issuer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// FuzzLoadState reads arbitrary state files. Properties: no panic; a file
// the issuer accepts holds keys that match their certificates, and saving
// what was loaded and loading it again gives the same authorities.
func FuzzLoadState(f *testing.F) {
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	seed := func(st authorities) {
		dir := f.TempDir()
		if err := saveState(dir, td, st); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, StateFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	a1, err := newAuthority(td, now, 24*time.Hour, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	a2, err := newAuthority(td, now.Add(time.Hour), 24*time.Hour, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	a3, err := newAuthority(td, now.Add(-time.Hour), 24*time.Hour, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	retired := *a3
	retired.key, retired.retireAfter = nil, now.Add(12*time.Hour)
	seed(authorities{active: a1})
	seed(authorities{active: a1, prepared: a2, retired: []*authority{&retired}})
	f.Add([]byte(`{"version":1,"trustDomain":"cluster.local","authorities":[{"role":"active","certificate":"","maxSVIDTTL":"1h"}]}`))
	f.Add([]byte(`{"version":1,"trustDomain":"other.example","authorities":[]}`))

	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxStateSize+1 {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := loadState(dir, td)
		if err != nil {
			return
		}
		for _, a := range st.all() {
			if a.key != nil && !a.key.PublicKey.Equal(a.cert.PublicKey) {
				t.Fatal("accepted a key that does not match its certificate")
			}
			if a.maxSVIDTTL <= 0 {
				t.Fatalf("accepted SVID TTL %v", a.maxSVIDTTL)
			}
		}
		if (st.active != nil && st.active.key == nil) || (st.prepared != nil && st.prepared.key == nil) {
			t.Fatal("accepted an active or prepared authority without a key")
		}
		again := t.TempDir()
		if err := saveState(again, td, st); err != nil {
			t.Fatalf("saving a loaded state: %v", err)
		}
		back, err := loadState(again, td)
		if err != nil {
			t.Fatalf("loading a saved state: %v", err)
		}
		x, y := st.all(), back.all()
		if len(x) != len(y) {
			t.Fatalf("%d authorities, %d after a round trip", len(x), len(y))
		}
		for i := range x {
			if string(x[i].cert.Raw) != string(y[i].cert.Raw) || x[i].maxSVIDTTL != y[i].maxSVIDTTL ||
				!x[i].created.Equal(y[i].created) || !x[i].retireAfter.Equal(y[i].retireAfter) ||
				(x[i].key == nil) != (y[i].key == nil) || (x[i].key != nil && !x[i].key.Equal(y[i].key)) {
				t.Fatalf("authority %d changed in a round trip", i)
			}
		}
	})
}
