package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/nodemesh/nodemesh/auth"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time       { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)      { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration)  { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func serial(s *x509svid.SVID) string  { return s.Certificates[0].SerialNumber.String() }
func signer(s *x509svid.SVID) []byte  { return s.Certificates[0].AuthorityKeyId }
func skid(c *x509.Certificate) []byte { return c.SubjectKeyId }

func mustSVID(t *testing.T, i *Issuer, id auth.Identity) *x509svid.SVID {
	t.Helper()
	s, err := i.SVID(context.Background(), id)
	if err != nil {
		t.Fatalf("SVID(%d): %v", id, err)
	}
	return s
}

// verifyAt checks an SVID with go-spiffe's verifier against the issuer's
// current bundle at a given time.
func verifyAt(t *testing.T, i *Issuer, s *x509svid.SVID, at time.Time) error {
	t.Helper()
	b, err := i.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = x509svid.Verify(s.Certificates, b, x509svid.WithTime(at))
	return err
}

func TestIssuerMintsSVIDs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	i, err := New(td, dir, WithSVIDTTL(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	s := mustSVID(t, i, 4711)
	leaf := s.Certificates[0]
	if got, want := s.ID.String(), "spiffe://cluster.local/identity/4711"; got != want {
		t.Errorf("SVID ID = %s, want %s", got, want)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/identity/4711" {
		t.Errorf("URI SANs = %v, want exactly spiffe://cluster.local/identity/4711", leaf.URIs)
	}
	if leaf.IsCA || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("leaf must be a non-CA with only the URI SAN: %+v", leaf)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := leaf.NotAfter.Sub(before); life < 29*time.Minute || life > 31*time.Minute {
		t.Errorf("SVID lifetime %s, want 30m", life)
	}
	// go-spiffe's own parser and verifier accept it.
	certDER, keyDER, err := s.MarshalRaw()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509svid.ParseRaw(certDER, keyDER); err != nil {
		t.Errorf("go-spiffe rejects the SVID: %v", err)
	}
	if err := verifyAt(t, i, s, time.Now()); err != nil {
		t.Errorf("SVID does not verify against the bundle: %v", err)
	}
	if again := mustSVID(t, i, 4711); serial(again) != serial(s) {
		t.Errorf("second SVID call minted a new SVID; want the cached one")
	}
	if _, err := i.SVID(context.Background(), 0); err == nil {
		t.Error("SVID(0) succeeded; identity 0 names nothing")
	}
	fi, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %o, want 0700", di.Mode().Perm())
	}
}

// TestIssuerRestartKeepsTrustDomain: a second issuer on the same state
// directory (an agent restart) trusts what the first one signed and signs
// with the same authority.
func TestIssuerRestartKeepsTrustDomain(t *testing.T) {
	dir := t.TempDir()
	first, err := New(td, dir)
	if err != nil {
		t.Fatal(err)
	}
	s := mustSVID(t, first, 9)
	second, err := New(td, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyAt(t, second, s, time.Now()); err != nil {
		t.Errorf("restarted issuer does not trust the SVID of the first: %v", err)
	}
	a1, a2 := first.Authorities(), second.Authorities()
	if len(a1) != 1 || len(a2) != 1 || !a1[0].Equal(a2[0]) {
		t.Errorf("authorities changed across restart: %d vs %d", len(a1), len(a2))
	}
	if s2 := mustSVID(t, second, 10); string(signer(s2)) != string(skid(a1[0])) {
		t.Error("restarted issuer signs with another authority")
	}
}

func TestIssuerRefusesBadState(t *testing.T) {
	good := t.TempDir()
	if _, err := New(td, good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(good, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		td      string
		want    string
	}{
		{name: "readable by others", content: string(data), mode: 0o644, td: "cluster.local", want: "mode 644"},
		{name: "other trust domain", content: string(data), mode: 0o600, td: "other.example", want: `holds trust domain "cluster.local"`},
		{name: "garbage", content: "{not json", mode: 0o600, td: "cluster.local", want: "decoding issuer state"},
		{name: "unknown field", content: `{"version":1,"trustDomain":"cluster.local","x":1}`, mode: 0o600, td: "cluster.local", want: "unknown field"},
		{name: "key of another cert", content: swapKey(t, string(data)), mode: 0o600, td: "cluster.local", want: "does not match the certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, StateFile)
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := New(spiffeid.RequireTrustDomainFromString(tc.td), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
			if got, _ := os.ReadFile(p); string(got) != tc.content {
				t.Error("a refused state file was modified")
			}
		})
	}
}

// swapKey replaces the state's CA key by the key of a second, unrelated
// state.
func swapKey(t *testing.T, doc string) string {
	other := t.TempDir()
	if _, err := New(td, other); err != nil {
		t.Fatal(err)
	}
	od, err := os.ReadFile(filepath.Join(other, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	key := func(s string) string {
		i := strings.Index(s, `"key": "`)
		j := strings.Index(s[i+8:], `"`)
		return s[i+8 : i+8+j]
	}
	return strings.Replace(doc, key(doc), key(string(od)), 1)
}

// TestIssuerRotatesSVIDs runs the real rotation loop with a short
// lifetime: a subscriber is woken and gets a new SVID while the old one is
// still valid.
func TestIssuerRotatesSVIDs(t *testing.T) {
	i, err := New(td, t.TempDir(), WithSVIDTTL(2*time.Second), WithCATTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go i.Run(ctx)
	ch, unsub := i.Subscribe()
	defer unsub()
	first := mustSVID(t, i, 77)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("no rotation within 10s for a 2s SVID")
		}
		next := mustSVID(t, i, 77)
		if serial(next) == serial(first) {
			continue
		}
		now := time.Now()
		if !now.Before(first.Certificates[0].NotAfter) {
			t.Errorf("rotated only at %s, after the old SVID expired at %s", now, first.Certificates[0].NotAfter)
		}
		if err := verifyAt(t, i, next, now); err != nil {
			t.Errorf("rotated SVID does not verify: %v", err)
		}
		return
	}
}

// TestIssuerAuthoritySchedule walks an authority's life on a fake clock:
// prepared at half (in the bundle, not signing), active at three quarters
// (the old one retired but still trusted), the retired one dropped once
// every SVID it signed expired — and all of it survives a restart.
func TestIssuerAuthoritySchedule(t *testing.T) {
	const svidTTL, caTTL = time.Hour, 8 * time.Hour
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	dir := t.TempDir()
	i, err := New(td, dir, WithSVIDTTL(svidTTL), WithCATTL(caTTL), WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	ch, unsub := i.Subscribe()
	defer unsub()
	a := i.Authorities()
	if len(a) != 1 {
		t.Fatalf("%d authorities at start, want 1", len(a))
	}
	caA := a[0]
	if got := caA.NotAfter.Sub(t0); got != caTTL {
		t.Errorf("CA lifetime %s, want %s", got, caTTL)
	}

	clk.set(t0.Add(4*time.Hour - time.Minute))
	i.maintain(clk.now())
	if n := len(i.Authorities()); n != 1 {
		t.Fatalf("%d authorities before half-life, want 1", n)
	}

	clk.set(t0.Add(4 * time.Hour))
	i.maintain(clk.now())
	select {
	case <-ch:
	default:
		t.Error("preparing an authority did not notify subscribers")
	}
	a = i.Authorities()
	if len(a) != 2 {
		t.Fatalf("%d authorities at half-life, want active + prepared", len(a))
	}
	caB := a[1]
	if s := mustSVID(t, i, 1); string(signer(s)) != string(skid(caA)) {
		t.Error("the prepared authority signs before it is active")
	}

	clk.set(t0.Add(6*time.Hour - time.Second))
	lastOfA := mustSVID(t, i, 2)
	if string(signer(lastOfA)) != string(skid(caA)) {
		t.Fatal("SVID just before activation not signed by the old authority")
	}
	clk.set(t0.Add(6 * time.Hour))
	i.maintain(clk.now())
	if s := mustSVID(t, i, 3); string(signer(s)) != string(skid(caB)) {
		t.Error("new SVIDs are not signed by the activated authority")
	}
	if err := verifyAt(t, i, lastOfA, t0.Add(6*time.Hour+59*time.Minute)); err != nil {
		t.Errorf("an SVID of the retired authority is no longer trusted before it expired: %v", err)
	}

	// Restart: the retired authority and its schedule come back.
	j, err := New(td, dir, WithSVIDTTL(svidTTL), WithCATTL(caTTL), WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(j.Authorities()); n != 2 {
		t.Fatalf("%d authorities after restart, want active + retired", n)
	}
	if err := verifyAt(t, j, lastOfA, t0.Add(6*time.Hour+30*time.Minute)); err != nil {
		t.Errorf("after restart the retired authority's SVIDs are not trusted: %v", err)
	}

	clk.set(t0.Add(7*time.Hour + time.Second))
	j.maintain(clk.now())
	a = j.Authorities()
	if len(a) != 1 || !a[0].Equal(caB) {
		t.Fatalf("after the retired authority's last SVID expired: %d authorities, want only the new one", len(a))
	}
	if err := verifyAt(t, j, mustSVID(t, j, 4), clk.now()); err != nil {
		t.Errorf("SVID of the new authority: %v", err)
	}
}

func TestIssuerPeerAuthorities(t *testing.T) {
	a, err := New(td, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(td, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sb := mustSVID(t, b, 5)
	if err := verifyAt(t, a, sb, time.Now()); err == nil {
		t.Fatal("an unrelated issuer's SVID verifies before its authority is trusted")
	}
	ch, unsub := a.Subscribe()
	defer unsub()
	if err := a.SetPeerAuthorities(b.Authorities()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Error("SetPeerAuthorities did not notify")
	}
	if err := verifyAt(t, a, sb, time.Now()); err != nil {
		t.Errorf("peer SVID not trusted after SetPeerAuthorities: %v", err)
	}
	// A leaf is not an authority; the previous peers stay.
	if err := a.SetPeerAuthorities([]*x509.Certificate{sb.Certificates[0]}); err == nil {
		t.Error("SetPeerAuthorities accepted a leaf certificate")
	}
	other, err := New(spiffeid.RequireTrustDomainFromString("other.example"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetPeerAuthorities(other.Authorities()); err == nil {
		t.Error("SetPeerAuthorities accepted another trust domain's authority")
	}
	if err := verifyAt(t, a, sb, time.Now()); err != nil {
		t.Errorf("a refused SetPeerAuthorities dropped the previous peers: %v", err)
	}
	if err := a.SetPeerAuthorities(nil); err != nil {
		t.Fatal(err)
	}
	if err := verifyAt(t, a, sb, time.Now()); err == nil {
		t.Error("peer SVID still trusted after its authority was removed")
	}
}
