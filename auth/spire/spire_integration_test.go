package spire_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/handshake"
	"github.com/nodemesh/nodemesh/auth/spire"
	"github.com/nodemesh/nodemesh/internal/spiretest"
)

// These tests run real spire-server and spire-agent binaries built from
// the nested module (cached; NODEMESH_INTEGRATION=1 builds them).

var td = spiffeid.RequireTrustDomainFromString("example.org")

// delegateID is the SPIFFE ID the nodemesh agent (here: this test
// process) is known by to the SPIRE agents' authorized_delegates.
var delegateID = spiffeid.RequireFromPath(td, "/nodemesh/agent")

// svidTTL is short so that the agents rotate SVIDs during the test (at
// half their life, counted from NotBefore, which SPIRE backdates 10 s).
const svidTTL = 30 * time.Second

// Environment of the helper process that connects as a refused caller.
const (
	helperSocketEnv = "NODEMESH_SPIRE_HELPER_SOCKET"
)

type node struct {
	agent *spiretest.Agent
	src   *spire.Source
}

type deployment struct {
	server *spiretest.Server
	reg    *spire.Registrar
	a, b   node
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// deploy starts a SPIRE server and two agents (nodes a and b), registers
// this process as the delegate on both (by uid and gid, through the unix
// workload attestor), and runs a Source on each agent's admin socket.
func deploy(t *testing.T) *deployment {
	t.Helper()
	srv := spiretest.ForTest(t, spiretest.ServerOptions{TrustDomain: td, SVIDTTL: svidTTL})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := &deployment{server: srv}
	reg, err := spire.NewRegistrar(srv.Conn(), td, spire.WithLogger(logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	d.reg = reg
	for _, n := range []struct {
		name string
		into *node
	}{{"a", &d.a}, {"b", &d.b}} {
		ag, err := srv.StartAgent(ctx, spiretest.AgentOptions{Name: n.name, AuthorizedDelegates: []spiffeid.ID{delegateID}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ag.Register(ctx, delegateID, "unix:uid:"+strconv.Itoa(os.Getuid()), "unix:gid:"+strconv.Itoa(os.Getgid())); err != nil {
			t.Fatal(err)
		}
		src, err := spire.New(td, ag.AdminSocket, spire.WithLogger(logger(t).With("node", n.name)), spire.WithBackoff(100*time.Millisecond, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := src.Run(runCtx); err != nil {
				t.Error(err)
			}
		}()
		t.Cleanup(func() { stop(); <-done })
		*n.into = node{agent: ag, src: src}
	}
	// The delegate entries reach the agents within their sync interval;
	// until then the agents refuse the Sources ("no identity issued").
	for _, n := range []node{d.a, d.b} {
		await(t, n.src, 30*time.Second, "node "+n.agent.Name+"'s agent accepting this process as a delegate", func() bool {
			return n.src.Status() == nil
		})
	}
	return d
}

func svid(t *testing.T, src auth.Source, id auth.Identity) *x509svid.SVID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := src.SVID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// has reports whether src holds an SVID for id right now, without
// waiting.
func has(src auth.Source, id auth.Identity) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := src.SVID(ctx, id)
	return err == nil
}

// await waits, woken by src's Subscribe, until cond holds.
func await(t *testing.T, src auth.Source, within time.Duration, what string, cond func() bool) {
	t.Helper()
	changed, cancel := src.Subscribe()
	defer cancel()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}

type localSet map[auth.Identity]bool

func (s localSet) IsLocal(id auth.Identity) bool { return s[id] }

// serveHandshakes runs a handshake server for src proving locals on a
// loopback port.
func serveHandshakes(t *testing.T, src auth.Source, locals ...auth.Identity) netip.AddrPort {
	t.Helper()
	set := localSet{}
	for _, id := range locals {
		set[id] = true
	}
	hs := handshake.NewServer(src, set, handshake.WithLogger(logger(t)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return netip.MustParseAddrPort(l.Addr().String())
}

// impostor is a node's source that presents another identity's (valid,
// SPIRE-issued) SVID for one of its identities.
type impostor struct {
	auth.Source
	claim, present auth.Identity
}

func (s impostor) SVID(ctx context.Context, id auth.Identity) (*x509svid.SVID, error) {
	if id == s.claim {
		id = s.present
	}
	return s.Source.SVID(ctx, id)
}

func TestSPIREDelegatedIdentity(t *testing.T) {
	d := deploy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Identities 100 and 101 have endpoints on node a, 200 and 201 on b:
	// each node's entries are parented on its own alias, so each agent
	// receives only its node's identities.
	if ch, err := d.reg.Sync(ctx, d.a.agent.Alias, []auth.Identity{100, 101}); err != nil || ch != (spire.Changes{Created: 2}) {
		t.Fatalf("Sync a: %+v, %v", ch, err)
	}
	if ch, err := d.reg.Sync(ctx, d.b.agent.Alias, []auth.Identity{200, 201}); err != nil || ch != (spire.Changes{Created: 2}) {
		t.Fatalf("Sync b: %+v, %v", ch, err)
	}

	t.Run("SVIDs and bundle", func(t *testing.T) {
		serverBundle, err := bundlev1.NewBundleClient(d.server.Conn()).GetBundle(ctx, &bundlev1.GetBundleRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			n   node
			ids []auth.Identity
		}{{d.a, []auth.Identity{100, 101}}, {d.b, []auth.Identity{200, 201}}} {
			b, err := c.n.src.Bundle()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(b.X509Authorities()), len(serverBundle.GetX509Authorities()); got != want || want == 0 {
				t.Fatalf("node %s: %d authorities, the server has %d", c.n.agent.Name, got, want)
			}
			for i, a := range serverBundle.GetX509Authorities() {
				if !bytes.Equal(b.X509Authorities()[i].Raw, a.GetAsn1()) {
					t.Errorf("node %s: authority %d differs from the server's", c.n.agent.Name, i)
				}
			}
			for _, id := range c.ids {
				s := svid(t, c.n.src, id)
				leaf := s.Certificates[0]
				if len(leaf.URIs) != 1 || leaf.URIs[0].String() != fmt.Sprintf("spiffe://example.org/identity/%d", id) {
					t.Errorf("node %s identity %d: URI SANs %v", c.n.agent.Name, id, leaf.URIs)
				}
				if _, _, err := x509svid.Verify(s.Certificates, b); err != nil {
					t.Errorf("node %s identity %d: SVID does not verify against the bundle: %v", c.n.agent.Name, id, err)
				}
				if life := leaf.NotAfter.Sub(time.Now()); life > svidTTL || life <= 0 {
					t.Errorf("node %s identity %d: SVID valid for %s more, want at most the %s TTL", c.n.agent.Name, id, life, svidTTL)
				}
			}
		}
		// Both agents are synced (they delivered their own identities);
		// neither holds the other node's.
		for _, id := range []auth.Identity{200, 201} {
			if has(d.a.src, id) {
				t.Errorf("node a holds an SVID of node b's identity %d", id)
			}
		}
		if has(d.b.src, 100) {
			t.Error("node b holds an SVID of node a's identity 100")
		}
	})

	t.Run("registrar is idempotent and leaves foreign entries alone", func(t *testing.T) {
		// An entry under a's alias with the nodemesh selector but not an
		// identity path belongs to someone else.
		other := spiffeid.RequireFromPath(td, "/not/an/identity")
		if _, err := d.a.agent.Register(ctx, other, spire.DefaultSelectorType+":"+spire.DefaultSelectorValue); err != nil {
			t.Fatal(err)
		}
		if ch, err := d.reg.Sync(ctx, d.a.agent.Alias, []auth.Identity{101, 100}); err != nil || ch != (spire.Changes{}) {
			t.Fatalf("second Sync: %+v, %v", ch, err)
		}
		resp, err := d.server.Entries().ListEntries(ctx, &entryv1.ListEntriesRequest{Filter: &entryv1.ListEntriesRequest_Filter{
			BySpiffeId: &types.SPIFFEID{TrustDomain: td.Name(), Path: other.Path()}}})
		if err != nil || len(resp.GetEntries()) != 1 {
			t.Fatalf("the foreign entry: %v, %v", resp.GetEntries(), err)
		}
		// A lifetime the entries do not have yet is corrected in place.
		reg, err := spire.NewRegistrar(d.server.Conn(), td, spire.WithSVIDTTL(45*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if ch, err := reg.Sync(ctx, d.b.agent.Alias, []auth.Identity{200, 201}); err != nil || ch != (spire.Changes{Updated: 2}) {
			t.Fatalf("Sync with a new lifetime: %+v, %v", ch, err)
		}
		// And back to the server's default, once.
		for i, want := range []spire.Changes{{Updated: 2}, {}} {
			if ch, err := d.reg.Sync(ctx, d.b.agent.Alias, []auth.Identity{200, 201}); err != nil || ch != want {
				t.Fatalf("Sync %d with the default lifetime: %+v, %v; want %+v", i, ch, err, want)
			}
		}
	})

	t.Run("handshake with SPIRE SVIDs", func(t *testing.T) {
		addrB := serveHandshakes(t, d.b.src, 200, 201)
		cli := handshake.NewClient(d.a.src, handshake.WithLogger(logger(t)))
		res, err := cli.Authenticate(ctx, 100, 200, addrB)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Peer.URIs[0].String(); got != "spiffe://example.org/identity/200" {
			t.Errorf("peer proved %s", got)
		}
		if got := res.Local.URIs[0].String(); got != "spiffe://example.org/identity/100" {
			t.Errorf("we presented %s", got)
		}
		if want := minTime(res.Local.NotAfter, res.Peer.NotAfter); res.Expiry.After(want) {
			t.Errorf("expiry %s is after the earlier NotAfter %s", res.Expiry, want)
		}

		// Node b presents identity 201's SVID (valid, from SPIRE) when
		// asked for 200: the initiator refuses it.
		addrImp := serveHandshakes(t, impostor{Source: d.b.src, claim: 200, present: 201}, 200)
		_, err = cli.Authenticate(ctx, 100, 200, addrImp)
		var he *handshake.Error
		if !errors.As(err, &he) || he.Reason != handshake.ReasonIdentity {
			t.Fatalf("handshake with the wrong identity's SVID: %v, want reason %s", err, handshake.ReasonIdentity)
		}
		// Node a cannot prove an identity SPIRE gave it no entry for.
		_, err = handshake.NewClient(d.a.src, handshake.WithTimeout(2*time.Second)).Authenticate(ctx, 200, 201, addrB)
		if !errors.As(err, &he) || he.Reason != handshake.ReasonNoSVID {
			t.Fatalf("handshake for another node's identity: %v, want reason %s", err, handshake.ReasonNoSVID)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		old := svid(t, d.a.src, 100).Certificates[0]
		var cur *x509.Certificate
		await(t, d.a.src, time.Until(old.NotAfter)+5*time.Second, "a rotated SVID for identity 100", func() bool {
			cur = svid(t, d.a.src, 100).Certificates[0]
			return !bytes.Equal(cur.Raw, old.Raw)
		})
		if now := time.Now(); !now.Before(old.NotAfter) {
			t.Errorf("rotated at %s, after the old SVID expired at %s", now, old.NotAfter)
		}
		if !cur.NotAfter.After(old.NotAfter) {
			t.Errorf("rotated SVID expires %s, not after the old one's %s", cur.NotAfter, old.NotAfter)
		}
		// Handshakes use the new SVID.
		addrB := serveHandshakes(t, d.b.src, 200)
		res, err := handshake.NewClient(d.a.src).Authenticate(ctx, 100, 200, addrB)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Local.Raw, svid(t, d.a.src, 100).Certificates[0].Raw) {
			t.Error("the handshake presented an SVID other than the current one")
		}
	})

	t.Run("bundle update", func(t *testing.T) {
		// An authority appended to the trust domain's bundle on the
		// server (as when federating or pre-staging a CA) reaches both
		// Sources through the agents' bundle streams.
		ca := selfSignedCA(t)
		if _, err := bundlev1.NewBundleClient(d.server.Conn()).AppendBundle(ctx, &bundlev1.AppendBundleRequest{
			X509Authorities: []*types.X509Certificate{{Asn1: ca.Raw}}}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []node{d.a, d.b} {
			await(t, n.src, 30*time.Second, "node "+n.agent.Name+"'s bundle holding the appended authority", func() bool {
				b, err := n.src.Bundle()
				return err == nil && b.HasX509Authority(ca)
			})
		}
		// The SPIRE CA is still there: SVIDs keep verifying.
		b, err := d.a.src.Bundle()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := x509svid.Verify(svid(t, d.a.src, 100).Certificates, b); err != nil {
			t.Errorf("SVID after the bundle update: %v", err)
		}
	})

	t.Run("deleted entry", func(t *testing.T) {
		if ch, err := d.reg.Sync(ctx, d.a.agent.Alias, []auth.Identity{100}); err != nil || ch != (spire.Changes{Deleted: 1}) {
			t.Fatalf("Sync without 101: %+v, %v", ch, err)
		}
		await(t, d.a.src, 30*time.Second, "identity 101's SVID going away", func() bool { return !has(d.a.src, 101) })
		if !has(d.a.src, 100) {
			t.Error("identity 100 went away with 101")
		}
	})

	t.Run("agent restart", func(t *testing.T) {
		d.a.agent.Stop()
		await(t, d.a.src, 30*time.Second, "Status reporting the agent gone", func() bool { return d.a.src.Status() != nil })
		t.Logf("Status with the agent stopped: %v", d.a.src.Status())
		// The last good SVID keeps serving while the agent is away.
		if !has(d.a.src, 100) {
			t.Fatal("identity 100 not served while the agent is down")
		}
		if err := d.a.agent.Start(ctx); err != nil {
			t.Fatal(err)
		}
		await(t, d.a.src, 30*time.Second, "the Source reconnecting", func() bool { return d.a.src.Status() == nil })
		// An entry created after the restart arrives: the Source
		// reconnected.
		if _, err := d.reg.Sync(ctx, d.a.agent.Alias, []auth.Identity{100, 102}); err != nil {
			t.Fatal(err)
		}
		await(t, d.a.src, 30*time.Second, "identity 102 after the agent restarted", func() bool { return has(d.a.src, 102) })
	})

	t.Run("agent gone until the SVIDs expire: fails closed", func(t *testing.T) {
		addrA := serveHandshakes(t, d.a.src, 100)
		addrB := serveHandshakes(t, d.b.src, 200)
		held := svid(t, d.a.src, 100).Certificates[0]
		d.a.agent.Stop()
		await(t, d.a.src, 30*time.Second, "Status reporting the agent gone", func() bool { return d.a.src.Status() != nil })
		// Expiry wakes nobody (see the package doc); wait for the clock.
		time.Sleep(time.Until(held.NotAfter) + 100*time.Millisecond)

		q, cancelQ := context.WithTimeout(ctx, 2*time.Second)
		_, err := d.a.src.SVID(q, 100)
		cancelQ()
		if !errors.Is(err, auth.ErrNoSVID) || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "SVID stream") {
			t.Fatalf("SVID after it expired with the agent gone: %v; want ErrNoSVID saying it expired and why the stream is down", err)
		}
		t.Logf("SVID with the agent gone: %v", err)
		if err := d.a.src.Status(); err == nil || !strings.Contains(err.Error(), "SVID stream") {
			t.Errorf("Status with the agent gone: %v", err)
		}
		// Node a proves nothing, in either direction.
		_, err = handshake.NewClient(d.a.src, handshake.WithTimeout(2*time.Second)).Authenticate(ctx, 100, 200, addrB)
		var he *handshake.Error
		if !errors.As(err, &he) || he.Reason != handshake.ReasonNoSVID {
			t.Errorf("handshake from node a with its SVID expired: %v, want reason %s", err, handshake.ReasonNoSVID)
		}
		if _, err := handshake.NewClient(d.b.src, handshake.WithTimeout(3*time.Second)).Authenticate(ctx, 200, 100, addrA); err == nil {
			t.Error("a handshake to node a succeeded with its SVID expired")
		} else {
			t.Logf("handshake to node a: %v", err)
		}

		// The agent comes back: a fresh SVID, and node a proves 100 again.
		if err := d.a.agent.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if got := svid(t, d.a.src, 100).Certificates[0]; !got.NotAfter.After(time.Now()) {
			t.Fatalf("SVID after the agent came back expires %s", got.NotAfter)
		}
		if _, err := handshake.NewClient(d.b.src).Authenticate(ctx, 200, 100, addrA); err != nil {
			t.Fatalf("handshake to node a after its agent came back: %v", err)
		}
	})

	t.Run("caller not authorized", func(t *testing.T) {
		// This process's uid with another gid: the entry that makes a
		// caller the delegate (uid and gid) does not match it.
		intruder := spiffeid.RequireFromPath(td, "/intruder")
		if _, err := d.a.agent.Register(ctx, intruder, "unix:uid:"+strconv.Itoa(os.Getuid()), "unix:gid:4242"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name, want string
			gid        uint32
		}{
			{"registered, not a delegate", "caller not configured as an authorized delegate", 4242},
			{"not registered", "no identity issued", 4343},
		} {
			t.Run(c.name, func(t *testing.T) {
				var out string
				// The intruder entry reaches the agent within its sync
				// interval; until then the first case reads as the second.
				deadline := time.Now().Add(20 * time.Second)
				for {
					out = refusedCaller(t, d.a.agent.AdminSocket, c.gid)
					if strings.Contains(out, c.want) || time.Now().After(deadline) {
						break
					}
					time.Sleep(500 * time.Millisecond)
				}
				for _, want := range []string{spire.ErrRefused.Error(), "PermissionDenied", c.want, "authorized_delegates", "returned after"} {
					if !strings.Contains(out, want) {
						t.Errorf("refused caller's output does not mention %q:\n%s", want, out)
					}
				}
				// SVID reports the refusal rather than waiting out its
				// 30 s context.
				if strings.Contains(out, "deadline exceeded") {
					t.Errorf("the refused caller waited for its deadline:\n%s", out)
				}
			})
		}
	})

	// Last: the server does not come back.
	t.Run("server gone until the SVIDs expire: fails closed", func(t *testing.T) {
		held := svid(t, d.b.src, 200).Certificates[0]
		d.server.Halt()
		// The agent cannot renew; its stream stays up, so only the clock
		// tells.
		time.Sleep(time.Until(held.NotAfter) + 100*time.Millisecond)
		q, cancelQ := context.WithTimeout(ctx, 2*time.Second)
		_, err := d.b.src.SVID(q, 200)
		cancelQ()
		if !errors.Is(err, auth.ErrNoSVID) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("SVID after it expired with the server gone: %v; want ErrNoSVID saying it expired", err)
		}
		t.Logf("SVID with the server gone: %v", err)
		if err := d.b.src.Status(); err == nil || !strings.Contains(err.Error(), "without being renewed") {
			t.Errorf("Status with the server gone and the SVIDs expired: %v", err)
		}
		addrB := serveHandshakes(t, d.b.src, 200)
		if _, err := handshake.NewClient(d.a.src, handshake.WithTimeout(3*time.Second)).Authenticate(ctx, 100, 200, addrB); err == nil {
			t.Error("a handshake to node b succeeded with its SVID expired")
		}
	})
}

// selfSignedCA is a CA certificate nothing is signed with.
func selfSignedCA(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "appended authority"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// refusedCaller runs this test binary again as a helper with gid, which
// subscribes through the admin socket and prints what SVID returned.
func refusedCaller(t *testing.T, socket string, gid uint32) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRefusedCaller$", "-test.v")
	cmd.Env = append(os.Environ(), helperSocketEnv+"="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(os.Getuid()), Gid: gid}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	return string(out)
}

// TestHelperRefusedCaller is not a test on its own: refusedCaller runs it
// in a process with another gid.
func TestHelperRefusedCaller(t *testing.T) {
	socket := os.Getenv(helperSocketEnv)
	if socket == "" {
		t.Skip("helper process of TestSPIREDelegatedIdentity")
	}
	src, err := spire.New(td, socket, spire.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Run(ctx)
	start := time.Now()
	wait, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	_, err = src.SVID(wait, 100)
	fmt.Printf("returned after %s: %v\n", time.Since(start).Round(time.Millisecond), err)
}
