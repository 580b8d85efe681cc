package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/nodemesh/nodemesh/auth/issuer"
)

var peerTD = spiffeid.RequireTrustDomainFromString("cluster.local")

func newPeerIssuer(t *testing.T) *issuer.Issuer {
	t.Helper()
	i, err := issuer.New(peerTD, t.TempDir(), issuer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func authoritiesPEM(i *issuer.Issuer) []byte {
	var out []byte
	for _, c := range i.Authorities() {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// trusts reports whether every authority of peer is in i's bundle.
func trusts(i, peer *issuer.Issuer) bool {
	b, err := i.Bundle()
	if err != nil {
		return false
	}
	for _, c := range peer.Authorities() {
		if !b.HasX509Authority(c) {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeerAuthoritiesSkipBadFile: one bad file in the shared directory
// (garbage, a certificate that is no CA, one over the size limit) is
// skipped with its error; the good files' authorities are trusted, and
// an update of a good file still applies.
func TestPeerAuthoritiesSkipBadFile(t *testing.T) {
	dir := t.TempDir()
	self, a, b := newPeerIssuer(t), newPeerIssuer(t), newPeerIssuer(t)
	leaf, err := a.SVID(context.Background(), 42)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"garbage.pem": []byte("not PEM at all\n"),
		"leaf.pem":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificates[0].Raw}),
		"huge.pem":    make([]byte, maxPeerFile+1),
	}
	for name, data := range bad {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "node-a.pem"), authoritiesPEM(a), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := startPeerExchange(ctx, t, self, dir, "node-self")
	defer func() { cancel(); <-done }()

	waitFor(t, "node-a's authorities are trusted beside the bad files", func() bool { return trusts(self, a) })
	// node-a's file now names b's authorities: the update applies.
	if err := writeAtomic(filepath.Join(dir, "node-a.pem"), authoritiesPEM(b)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node-a's update applies", func() bool { return trusts(self, b) && !trusts(self, a) })
	// This node's own file is published and never trusted as a peer's.
	own, err := os.ReadFile(filepath.Join(dir, "node-self.pem"))
	if err != nil || !slices.Equal(own, authoritiesPEM(self)) {
		t.Fatalf("own authorities not published: %v", err)
	}
	if n := len(bundleCerts(t, self)); n != len(self.Authorities())+len(b.Authorities()) {
		t.Errorf("bundle holds %d authorities, want own %d + node-a's %d", n, len(self.Authorities()), len(b.Authorities()))
	}
}

func bundleCerts(t *testing.T, i *issuer.Issuer) []*x509.Certificate {
	t.Helper()
	b, err := i.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	return b.X509Authorities()
}

// startPeerExchange runs the authority exchange of self in dir.
func startPeerExchange(ctx context.Context, t *testing.T, self *issuer.Issuer, dir, node string, opts ...func(*peerExchange)) <-chan struct{} {
	x := newPeerExchange(self, dir, node, slog.New(slog.DiscardHandler))
	for _, o := range opts {
		o(x)
	}
	done := make(chan struct{})
	go func() { x.run(ctx); close(done) }()
	return done
}

// TestPeerAuthoritiesWatch: the directory is read on inotify events, not
// polled. With the fallback rescan at an hour, a new peer file is trusted
// at once, a file turned bad keeps its last good authorities, a removed
// file withdraws them, and an idle directory is not read again.
func TestPeerAuthoritiesWatch(t *testing.T) {
	dir := t.TempDir()
	self, a, b := newPeerIssuer(t), newPeerIssuer(t), newPeerIssuer(t)
	var x *peerExchange
	ctx, cancel := context.WithCancel(context.Background())
	done := startPeerExchange(ctx, t, self, dir, "node-self", func(p *peerExchange) { p.rescan, x = time.Hour, p })
	defer func() { cancel(); <-done }()

	if err := writeAtomic(filepath.Join(dir, "node-a.pem"), authoritiesPEM(a)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node-b.pem"), authoritiesPEM(b), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new peer files are trusted", func() bool { return trusts(self, a) && trusts(self, b) })
	// node-b's file turns to garbage: b stays trusted (its last good
	// content), node-a's removal still applies.
	if err := os.WriteFile(filepath.Join(dir, "node-b.pem"), []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "node-a.pem")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node-a's removal withdraws its authorities", func() bool { return !trusts(self, a) })
	if !trusts(self, b) {
		t.Fatal("node-b's last good authorities were dropped when its file turned bad")
	}
	// Idle: no read for well over the debounce.
	waitFor(t, "the exchange settles", func() bool {
		n := x.reads.Load()
		time.Sleep(200 * time.Millisecond)
		return x.reads.Load() == n
	})
	n := x.reads.Load()
	time.Sleep(1500 * time.Millisecond)
	if m := x.reads.Load(); m != n {
		t.Errorf("an idle directory was read %d times in 1.5 s", m-n)
	}
}

// TestPeerAuthoritiesDirectoryReplaced: when the directory is removed and
// created again, the watch ends; the bounded rescan watches the new one,
// publishes this node's file there again and trusts what it holds.
func TestPeerAuthoritiesDirectoryReplaced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "peers")
	self, a := newPeerIssuer(t), newPeerIssuer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := startPeerExchange(ctx, t, self, dir, "node-self", func(p *peerExchange) { p.rescan = 200 * time.Millisecond })
	defer func() { cancel(); <-done }()
	waitFor(t, "this node's file is published", func() bool { _, err := os.Stat(filepath.Join(dir, "node-self.pem")); return err == nil })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node-a.pem"), authoritiesPEM(a), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node-a's file in the new directory is trusted", func() bool { return trusts(self, a) })
	waitFor(t, "this node's file is published again", func() bool { _, err := os.Stat(filepath.Join(dir, "node-self.pem")); return err == nil })
	// Later changes in the new directory apply too.
	b := newPeerIssuer(t)
	if err := writeAtomic(filepath.Join(dir, "node-b.pem"), authoritiesPEM(b)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node-b's file in the new directory is trusted", func() bool { return trusts(self, b) })
}
