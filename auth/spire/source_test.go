package spire

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	delegatedidentityv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/agent/delegatedidentity/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodemesh/nodemesh/auth"
)

// These tests drive the Source against an in-process Delegated Identity
// server on a real Unix socket with real gRPC: it sends what no real
// SPIRE agent can be made to send on demand (broken, oversized, refused),
// and stops mid-stream. The tests against real SPIRE are in
// spire_integration_test.go.

// fakeAgent serves the Delegated Identity API, sending whatever the test
// pushes to every open stream.
type fakeAgent struct {
	delegatedidentityv1.UnimplementedDelegatedIdentityServer
	socket  string
	refuse  atomic.Bool
	svids   chan *delegatedidentityv1.SubscribeToX509SVIDsResponse
	bundles chan *delegatedidentityv1.SubscribeToX509BundlesResponse
	streams atomic.Int32

	mu  sync.Mutex
	srv *grpc.Server
}

func newFakeAgent(t *testing.T) *fakeAgent {
	dir, err := os.MkdirTemp("", "fakeagent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a := &fakeAgent{socket: filepath.Join(dir, "admin.sock"),
		svids:   make(chan *delegatedidentityv1.SubscribeToX509SVIDsResponse),
		bundles: make(chan *delegatedidentityv1.SubscribeToX509BundlesResponse)}
	a.start(t)
	t.Cleanup(a.stop)
	return a
}

func (a *fakeAgent) start(t *testing.T) {
	t.Helper()
	_ = os.Remove(a.socket)
	l, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	delegatedidentityv1.RegisterDelegatedIdentityServer(srv, a)
	a.mu.Lock()
	a.srv = srv
	a.mu.Unlock()
	go srv.Serve(l)
}

// stop ends every stream and closes the socket, as a dying agent does.
func (a *fakeAgent) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		a.srv.Stop()
		a.srv = nil
	}
}

func (a *fakeAgent) SubscribeToX509SVIDs(_ *delegatedidentityv1.SubscribeToX509SVIDsRequest, st delegatedidentityv1.DelegatedIdentity_SubscribeToX509SVIDsServer) error {
	if a.refuse.Load() {
		return status.Error(codes.PermissionDenied, "caller not configured as an authorized delegate")
	}
	a.streams.Add(1)
	defer a.streams.Add(-1)
	for {
		select {
		case m := <-a.svids:
			if err := st.Send(m); err != nil {
				return err
			}
		case <-st.Context().Done():
			return nil
		}
	}
}

func (a *fakeAgent) SubscribeToX509Bundles(_ *delegatedidentityv1.SubscribeToX509BundlesRequest, st delegatedidentityv1.DelegatedIdentity_SubscribeToX509BundlesServer) error {
	if a.refuse.Load() {
		return status.Error(codes.PermissionDenied, "caller not configured as an authorized delegate")
	}
	a.streams.Add(1)
	defer a.streams.Add(-1)
	for {
		select {
		case m := <-a.bundles:
			if err := st.Send(m); err != nil {
				return err
			}
		case <-st.Context().Done():
			return nil
		}
	}
}

func (a *fakeAgent) sendSVIDs(t *testing.T, ws ...*delegatedidentityv1.X509SVIDWithKey) {
	t.Helper()
	select {
	case a.svids <- &delegatedidentityv1.SubscribeToX509SVIDsResponse{X509Svids: ws}:
	case <-time.After(10 * time.Second):
		t.Fatal("no SVID stream to send to")
	}
}

func (a *fakeAgent) sendBundle(t *testing.T, p *pki) {
	t.Helper()
	var cas []byte
	for _, c := range p.iss.Authorities() {
		cas = append(cas, c.Raw...)
	}
	a.sendRawBundle(t, map[string][]byte{td.IDString(): cas})
}

func (a *fakeAgent) sendRawBundle(t *testing.T, m map[string][]byte) {
	t.Helper()
	select {
	case a.bundles <- &delegatedidentityv1.SubscribeToX509BundlesResponse{CaCertificates: m}:
	case <-time.After(10 * time.Second):
		t.Fatal("no bundle stream to send to")
	}
}

// clock is a settable clock for expiry checks.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func fastBackoff() Option         { return WithBackoff(20*time.Millisecond, 100*time.Millisecond) }
func quick() (context.Context, func()) {
	return context.WithTimeout(context.Background(), 300*time.Millisecond)
}

func runSource(t *testing.T, a *fakeAgent, opts ...Option) *Source {
	t.Helper()
	s, err := New(td, a.socket, append([]Option{fastBackoff()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func waitWake(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up from Subscribe")
	}
}

func TestSourceWaitsForSVIDAndBundle(t *testing.T) {
	p := newPKI(t, td)
	a := newFakeAgent(t)
	s := runSource(t, a)
	changed, cancel := s.Subscribe()
	defer cancel()

	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sv, err := s.SVID(ctx, 100)
		if err == nil && sv.ID != identityID(td, 100) {
			err = errors.New("wrong SVID " + sv.ID.String())
		}
		got <- err
	}()
	a.sendSVIDs(t, wire(t, p.svid(100), identityID(td, 100)))
	waitWake(t, changed)
	select {
	case err := <-got:
		t.Fatalf("SVID returned before the bundle arrived: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := s.Bundle(); !errors.Is(err, ErrNoBundle) {
		t.Fatalf("Bundle before any arrived: %v, want ErrNoBundle", err)
	}
	a.sendBundle(t, p)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	b, err := s.Bundle()
	if err != nil || len(b.X509Authorities()) == 0 {
		t.Fatalf("Bundle: %v, %v", b, err)
	}

	// An identity the agent has no SVID for: the wait ends with ctx and
	// says why.
	ctx, cancelQ := quick()
	defer cancelQ()
	_, err = s.SVID(ctx, 999)
	if !errors.Is(err, auth.ErrNoSVID) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no registration entry") {
		t.Fatalf("SVID of an unknown identity: %v", err)
	}
}

func TestSourceKeepsLastGoodAcrossReconnect(t *testing.T) {
	p := newPKI(t, td)
	a := newFakeAgent(t)
	s := runSource(t, a)
	changed, cancel := s.Subscribe()
	defer cancel()
	a.sendBundle(t, p)
	a.sendSVIDs(t, wire(t, p.svid(100), identityID(td, 100)), wire(t, p.svid(101), identityID(td, 101)))
	ctx, cancelCtx := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelCtx()
	if _, err := s.SVID(ctx, 101); err != nil {
		t.Fatal(err)
	}

	// The agent goes away: Status says so, and the Source still serves
	// what it had.
	if err := s.Status(); err != nil {
		t.Fatalf("Status while both streams deliver: %v", err)
	}
	a.stop()
	for s.Status() == nil {
		waitWake(t, changed)
	}
	if err := s.Status(); !strings.Contains(err.Error(), "Unavailable") {
		t.Errorf("Status with the agent gone: %v", err)
	}
	for _, id := range []auth.Identity{100, 101} {
		q, cancelQ := quick()
		if _, err := s.SVID(q, id); err != nil {
			t.Errorf("identity %d while the agent is down: %v", id, err)
		}
		cancelQ()
	}
	if _, err := s.Bundle(); err != nil {
		t.Errorf("bundle while the agent is down: %v", err)
	}

	// The agent comes back with a different set: the Source reconnects
	// and the new set replaces the old one (101 went away).
	a.start(t)
	a.sendBundle(t, p)
	a.sendSVIDs(t, wire(t, p.svid(100), identityID(td, 100)))
	for has(s, 101) || s.Status() != nil {
		waitWake(t, changed)
	}
	if !has(s, 100) {
		t.Error("identity 100 went away with 101")
	}
}

// has reports whether s holds an SVID for id right now.
func has(s *Source, id auth.Identity) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.SVID(ctx, id)
	return err == nil
}

func TestSourceNeverServesExpired(t *testing.T) {
	p := newPKI(t, td)
	a := newFakeAgent(t)
	sv := p.svid(100)
	clk := newClock(time.Now())
	s := runSource(t, a, WithClock(clk.now))
	a.sendBundle(t, p)
	a.sendSVIDs(t, wire(t, sv, identityID(td, 100)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.SVID(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.Status(); err != nil {
		t.Fatalf("Status with a valid SVID: %v", err)
	}
	clk.set(sv.Certificates[0].NotAfter)
	if err := s.Status(); err == nil || !strings.Contains(err.Error(), "without being renewed") {
		t.Errorf("Status with the SVID expired: %v", err)
	}
	q, cancelQ := quick()
	defer cancelQ()
	_, err := s.SVID(q, 100)
	if !errors.Is(err, auth.ErrNoSVID) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("SVID at its NotAfter: %v", err)
	}
	// An update that carries only already-expired SVIDs adds nothing.
	a.sendSVIDs(t, wire(t, sv, identityID(td, 100)))
	q2, cancelQ2 := quick()
	defer cancelQ2()
	// and the error says the agent could not renew it, not that there is
	// no entry.
	if _, err := s.SVID(q2, 100); !errors.Is(err, auth.ErrNoSVID) || !strings.Contains(err.Error(), "could not renew") {
		t.Fatalf("SVID after an update with an expired one: %v", err)
	}
}

func TestSourceRefusedFailsFast(t *testing.T) {
	a := newFakeAgent(t)
	a.refuse.Store(true)
	s := runSource(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var err error
	// The first SVID call may come before the first subscription was
	// refused; it then waits for the refusal, not for ctx.
	_, err = s.SVID(ctx, 100)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, auth.ErrNoSVID) {
		t.Fatalf("SVID while refused: %v", err)
	}
	if !strings.Contains(err.Error(), "caller not configured as an authorized delegate") || !strings.Contains(err.Error(), "authorized_delegates") {
		t.Errorf("error does not say what SPIRE said and what to fix: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("SVID took %s to report the refusal", d)
	}
	// Once the agent accepts us the refusal is forgotten.
	p := newPKI(t, td)
	changed, cancelSub := s.Subscribe()
	defer cancelSub()
	a.refuse.Store(false)
	a.sendBundle(t, p)
	waitWake(t, changed)
	a.sendSVIDs(t, wire(t, p.svid(100), identityID(td, 100)))
	waitWake(t, changed)
	if _, err := s.SVID(ctx, 100); err != nil {
		t.Fatalf("SVID after the agent accepted us: %v", err)
	}
}

func TestSourceBounds(t *testing.T) {
	p := newPKI(t, td)
	a := newFakeAgent(t)
	s := runSource(t, a, WithMaxMessageSize(8<<10), WithMaxSVIDs(2))
	a.sendBundle(t, p)
	a.sendSVIDs(t, wire(t, p.svid(100), identityID(td, 100)), wire(t, p.svid(101), identityID(td, 101)), wire(t, p.svid(102), identityID(td, 102)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range []auth.Identity{100, 101} {
		if _, err := s.SVID(ctx, id); err != nil {
			t.Fatalf("identity %d: %v", id, err)
		}
	}
	q, cancelQ := quick()
	defer cancelQ()
	if _, err := s.SVID(q, 102); !errors.Is(err, auth.ErrNoSVID) {
		t.Fatalf("identity 102 beyond the limit of 2: %v", err)
	}

	// A message over the size limit ends the stream; what the Source
	// had keeps serving, and the error names the cause.
	var big []*delegatedidentityv1.X509SVIDWithKey
	for i := 0; i < 20; i++ {
		big = append(big, wire(t, p.svid(103), identityID(td, 103)))
	}
	a.sendSVIDs(t, big...)
	q2, cancelQ2 := context.WithTimeout(context.Background(), time.Second)
	defer cancelQ2()
	_, err := s.SVID(q2, 103)
	if !errors.Is(err, auth.ErrNoSVID) || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Fatalf("SVID after an oversized message: %v", err)
	}
	if _, err := s.SVID(ctx, 100); err != nil {
		t.Fatalf("last good SVID after an oversized message: %v", err)
	}

	// A broken bundle leaves the last good one in place.
	before, _ := s.Bundle()
	a.sendRawBundle(t, map[string][]byte{td.IDString(): []byte("garbage")})
	a.sendRawBundle(t, map[string][]byte{"spiffe://other.org": []byte("x")})
	after, err := s.Bundle()
	if err != nil || !after.Equal(before) {
		t.Fatalf("bundle after broken updates: %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		socket string
		opts   []Option
	}{
		{name: "no socket"},
		{name: "empty selector", socket: "/x", opts: []Option{WithSelector(Selector{})}},
		{name: "zero limit", socket: "/x", opts: []Option{WithMaxSVIDs(0)}},
		{name: "backoff upside down", socket: "/x", opts: []Option{WithBackoff(time.Second, time.Millisecond)}},
	} {
		if _, err := New(td, tc.socket, tc.opts...); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// No SPIRE agent at all (the socket does not exist): nothing is served,
// and both SVID's error and Status say why.
func TestSourceNoAgentFailsClosed(t *testing.T) {
	dir := t.TempDir()
	s, err := New(td, filepath.Join(dir, "admin.sock"), fastBackoff())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); <-done }()

	// The first subscription fails at once; poll until it has (no
	// wake-up: nothing was ever up), with a generous deadline.
	var svidErr error
	for deadline := time.Now().Add(10 * time.Second); ; {
		q, cancelQ := quick()
		_, svidErr = s.SVID(q, 100)
		cancelQ()
		if svidErr == nil || strings.Contains(svidErr.Error(), "SVID stream") || time.Now().After(deadline) {
			break
		}
	}
	if !errors.Is(svidErr, auth.ErrNoSVID) || !strings.Contains(svidErr.Error(), "SVID stream") || !strings.Contains(svidErr.Error(), "admin.sock") {
		t.Fatalf("SVID without an agent: %v; want ErrNoSVID naming the stream and the socket", svidErr)
	}
	if err := s.Status(); err == nil || !strings.Contains(err.Error(), "Unavailable") {
		t.Errorf("Status without an agent: %v", err)
	}
	if _, err := s.Bundle(); !errors.Is(err, ErrNoBundle) {
		t.Errorf("Bundle without an agent: %v", err)
	}
}
