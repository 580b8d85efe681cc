package workload

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/issuer"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

// pods is the test's endpoint knowledge: namespace → identity.
type pods struct {
	mu sync.Mutex
	m  map[NetNS]auth.Identity
}

func (p *pods) Attest(ns NetNS) (auth.Identity, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.m[ns]
	return id, ok
}

func (p *pods) set(ns NetNS, id auth.Identity) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[NetNS]auth.Identity{}
	}
	if id == 0 {
		delete(p.m, ns)
	} else {
		p.m[ns] = id
	}
}

type env struct {
	iss  *issuer.Issuer
	pods *pods
	srv  *Server
	addr string // unix://...
}

func start(t *testing.T, svidTTL time.Duration, opts ...Option) *env {
	t.Helper()
	iss, err := issuer.New(td, t.TempDir(), issuer.WithSVIDTTL(svidTTL), issuer.WithCATTL(4*svidTTL))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go iss.Run(ctx)
	p := &pods{}
	srv := New(iss, p, opts...)
	// A fresh directory: the socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "nmwl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return &env{iss: iss, pods: p, srv: srv, addr: "unix://" + path}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root to create network namespaces; CI runs it as root")
	}
}

var nsSeq atomic.Int64

// newNetNS creates a named network namespace for the test. The name
// follows datapath/testbed's "nmtb-<pid>-..." scheme, so its Sweep removes
// what a crashed run leaves behind.
func newNetNS(t *testing.T, role string) (string, NetNS) {
	t.Helper()
	name := fmt.Sprintf("nmtb-%d-auth%d-%s", os.Getpid(), nsSeq.Add(1), role)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("creating network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("removing network namespace %s: %v: %s", name, err, out)
		}
	})
	ns, err := NetNSOfPath("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return name, ns
}

func selfNetNS(t *testing.T) NetNS {
	t.Helper()
	ns, err := NetNSOfPath("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func decodeChain(t *testing.T, b64 string) []*x509.Certificate {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := x509.ParseCertificates(der)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// TestWorkloadAPIFromPodNamespace is the Workload API end to end: go-spiffe's
// own X509Source, in a process inside a network namespace the test
// created, gets the SVID of the identity mapped to that namespace and the
// trust bundle, and sees the SVID rotate.
func TestWorkloadAPIFromPodNamespace(t *testing.T) {
	requireRoot(t)
	e := start(t, 2*time.Second)
	name, ns := newNetNS(t, "pod")
	if ns == selfNetNS(t) {
		t.Fatal("the new namespace is the test's own")
	}
	e.pods.set(ns, 4242)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	evs := helper(ctx, t, name, "rotate", e.addr)
	if len(evs) != 2 || evs[0].Event != "svid" || evs[1].Event != "svid" {
		t.Fatalf("helper events %+v, want two SVIDs (first and rotated)", evs)
	}
	bundle, err := e.iss.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	var serials []string
	for i, ev := range evs {
		if ev.ID != "spiffe://cluster.local/identity/4242" {
			t.Errorf("SVID %d: ID %s, want the identity mapped to the namespace", i, ev.ID)
		}
		chain := decodeChain(t, ev.SVID)
		// Verified within its lifetime: the first may have expired
		// by now on a slow machine.
		mid := chain[0].NotBefore.Add(chain[0].NotAfter.Sub(chain[0].NotBefore) / 2)
		if _, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(mid)); err != nil {
			t.Errorf("SVID %d does not verify against the issuer's bundle: %v", i, err)
		}
		got := x509bundle.FromX509Authorities(td, decodeChain(t, ev.Bundle))
		if !got.Equal(bundle) {
			t.Errorf("SVID %d came with bundle of %d authorities, want the issuer's %d", i, len(got.X509Authorities()), len(bundle.X509Authorities()))
		}
		serials = append(serials, chain[0].SerialNumber.String())
	}
	if serials[0] == serials[1] {
		t.Error("the rotated SVID has the first one's serial")
	}
	if got := e.srv.Stats()[CountServed]; got < 2 {
		t.Errorf("served counter %d, want at least 2", got)
	}
	// And the same binary in an unmapped namespace is refused.
	other, _ := newNetNS(t, "stranger")
	evs = helper(ctx, t, other, "once", e.addr)
	if len(evs) != 1 || evs[0].Event != "error" || evs[0].Code != codes.PermissionDenied.String() {
		t.Fatalf("caller in an unmapped namespace: %+v, want PermissionDenied", evs)
	}
}

// TestWorkloadAPIRefusesHostCaller: a process in the host namespace (the
// test itself) belongs to no Pod and is refused, counted and logged.
func TestWorkloadAPIRefusesHostCaller(t *testing.T) {
	e := start(t, time.Hour)
	e.pods.set(NetNS{Dev: 1, Ino: 1}, 7) // someone else
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(e.addr))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("host caller: %v, want PermissionDenied", err)
	}
	_, err = workloadapi.FetchX509Bundles(ctx, workloadapi.WithAddr(e.addr))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("host caller fetching bundles: %v, want PermissionDenied", err)
	}
	if got := e.srv.Stats()[CountNotAttested]; got != 2 {
		t.Errorf("not_attested counter %d, want 2", got)
	}
}

func rawClient(t *testing.T, addr string) workload.SpiffeWorkloadAPIClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return workload.NewSpiffeWorkloadAPIClient(cc)
}

func withHeader(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
}

// TestWorkloadAPISecurityHeader: without `workload.spiffe.io: true` every
// method answers InvalidArgument, before attestation.
func TestWorkloadAPISecurityHeader(t *testing.T) {
	e := start(t, time.Hour)
	e.pods.set(selfNetNS(t), 5)
	c := rawClient(t, e.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, md := range []metadata.MD{nil, metadata.Pairs("workload.spiffe.io", "false"), metadata.Pairs("workload.spiffe.io", "TRUE")} {
		cctx := metadata.NewOutgoingContext(ctx, md)
		st, err := c.FetchX509SVID(cctx, &workload.X509SVIDRequest{})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("FetchX509SVID with header %v: %v, want InvalidArgument", md, err)
		}
		if _, err := c.FetchJWTSVID(cctx, &workload.JWTSVIDRequest{Audience: []string{"x"}}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("FetchJWTSVID with header %v: %v, want InvalidArgument", md, err)
		}
	}
	if got := e.srv.Stats()[CountNoHeader]; got != 6 {
		t.Errorf("no_header counter %d, want 6", got)
	}
	// With the header, JWT methods are honestly unimplemented.
	if _, err := c.FetchJWTSVID(withHeader(ctx), &workload.JWTSVIDRequest{Audience: []string{"x"}}); status.Code(err) != codes.Unimplemented {
		t.Errorf("FetchJWTSVID: %v, want Unimplemented", err)
	}
}

// TestWorkloadAPIStreamFollowsEndpoints: a stream re-attests its caller
// on Refresh: a new identity for the namespace gets a new SVID, a
// namespace that no longer belongs to a Pod loses the stream.
func TestWorkloadAPIStreamFollowsEndpoints(t *testing.T) {
	e := start(t, time.Hour)
	self := selfNetNS(t)
	e.pods.set(self, 11)
	c := rawClient(t, e.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.FetchX509SVID(withHeader(ctx), &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Svids[0].SpiffeId; got != "spiffe://cluster.local/identity/11" {
		t.Fatalf("first SVID %s", got)
	}
	if _, err := x509svid.ParseRaw(resp.Svids[0].X509Svid, resp.Svids[0].X509SvidKey); err != nil {
		t.Fatalf("response SVID does not parse: %v", err)
	}
	e.pods.set(self, 12)
	e.srv.Refresh()
	resp, err = st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Svids[0].SpiffeId; got != "spiffe://cluster.local/identity/12" {
		t.Fatalf("after the identity changed: %s", got)
	}
	e.pods.set(self, 0)
	e.srv.Refresh()
	if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("after the Pod left: %v, want PermissionDenied", err)
	}
}

// TestPeerCredsProcessGone: a connection whose connecting process has
// exited (it handed the socket to another process first) is not attested
// as whoever holds it now, nor as whatever reuses the pid.
func TestPeerCredsProcessGone(t *testing.T) {
	dir, err := os.MkdirTemp("", "nmwl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	evs := helper(ctx, t, "", "handoff", "unix://"+path) // returns after the helper exited and was reaped
	if len(evs) != 1 || evs[0].Event != "handed" {
		t.Fatalf("helper: %+v", evs)
	}
	t.Cleanup(func() { syscall.Kill(evs[0].PID, syscall.SIGKILL) })
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _, err = peerCreds{}.ServerHandshake(conn)
	if !errors.Is(err, ErrPeerGone) {
		t.Fatalf("attesting a connection of an exited process: %v, want ErrPeerGone", err)
	}

	// A live peer (this process) is attested to its namespace.
	c2, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	conn2, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	pc, info, err := peerCreds{}.ServerHandshake(conn2)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pi := info.(PeerInfo)
	if pi.PID != int32(os.Getpid()) || pi.NetNS != selfNetNS(t) {
		t.Errorf("peer info %+v, want pid %d in %v", pi, os.Getpid(), selfNetNS(t))
	}
}

// TestNetNSOfProcFallback covers the pre-6.11 path: /proc plus a liveness
// check through the pidfd.
func TestNetNSOfProcFallback(t *testing.T) {
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	f, err := netnsOfProc(pidfd, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if (NetNS{Dev: st.Dev, Ino: st.Ino}) != selfNetNS(t) {
		t.Error("fallback read another namespace than the process's own")
	}

	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dead, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dead)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := netnsOfProc(dead, cmd.Process.Pid); !errors.Is(err, ErrPeerGone) {
		t.Errorf("fallback for a reaped process: %v, want ErrPeerGone", err)
	}
}

func TestListenReplacesOnlySockets(t *testing.T) {
	dir, err := os.MkdirTemp("", "nmwl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sub", "agent.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %o, want 0666", fi.Mode().Perm())
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(path) // a stale socket is replaced
	if err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	}
	l2.Close()
	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(plain); err == nil {
		t.Error("Listen replaced a regular file")
	}
}

// TestWorkloadAPIConnectionLimit: a connection beyond the limit is closed
// at once and counted; the open one keeps working.
func TestWorkloadAPIConnectionLimit(t *testing.T) {
	e := start(t, time.Hour, WithMaxConns(1))
	e.pods.set(selfNetNS(t), 21)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := rawClient(t, e.addr)
	st, err := first.FetchX509SVID(withHeader(ctx), &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	second := rawClient(t, e.addr)
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	st2, err := second.FetchX509SVID(withHeader(short), &workload.X509SVIDRequest{})
	if err == nil {
		_, err = st2.Recv()
	}
	if err == nil {
		t.Fatal("a second connection was served beyond a limit of one")
	}
	if got := e.srv.Stats()[CountOverload]; got == 0 {
		t.Error("overload counter did not count the refused connection")
	}
}
