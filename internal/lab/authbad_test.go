package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// testCA is a CA the test holds the key of, for certificates no issuer
// would mint.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var testSerial atomic.Int64

func newTestCA(t *testing.T, trustDomain string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := url.Parse("spiffe://" + trustDomain)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(testSerial.Add(1)), Subject: pkix.Name{CommonName: "test CA " + trustDomain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, URIs: []*url.URL{id}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// leaf mints a leaf with the given URI SANs, valid from nb to na.
func (ca *testCA) leaf(t *testing.T, uris []string, nb, na time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(testSerial.Add(1)), NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// roguePeer answers handshakes on the lab network the way mode says.
type roguePeer struct {
	mu   sync.Mutex
	mode func(net.Conn)
}

func (p *roguePeer) set(mode func(net.Conn)) { p.mu.Lock(); p.mode = mode; p.mu.Unlock() }

func (p *roguePeer) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			mode(c)
		}()
	}
}

// presenting answers with TLS 1.3 and cert, and confirms like an agent
// (the confirmation byte) whatever the initiator presented.
func presenting(cert tls.Certificate) func(net.Conn) {
	return func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13,
			ClientAuth: tls.RequireAnyClientCert})
		if tc.Handshake() != nil {
			return
		}
		_, _ = tc.Write([]byte{0x01})
		_, _ = io.Copy(io.Discard, tc)
	}
}

// trickling sends the start of a TLS record a byte at a time, never
// finishing it, until the other side hangs up.
func trickling(c net.Conn) {
	for _, b := range []byte{0x16, 0x03, 0x03, 0x00, 0x40, 0x02, 0x00, 0x00, 0x3c, 0x03, 0x03} {
		if _, err := c.Write([]byte{b}); err != nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	_, _ = io.Copy(io.Discard, c)
}

// TestLabMutualAuthBadPeers runs the bad-certificate cases on two nodes
// with the built-in issuer. A rogue "node" (a listener on the lab network
// the test controls, with a CA it publishes in the shared authority
// directory) claims to host tiefighter's identity: node-2 must
// authenticate the deathstar with it, and refuses it for presenting an
// expired SVID, one with two URI SANs, one of another trust domain, one of
// an unknown CA, plain TCP, and a slow-loris trickle (cut off by the
// handshake timeout): each failure is counted with its reason and no auth
// entry is written for the rogue node while the real tiefighter keeps
// landing. A valid SVID from the published CA then does authenticate (the
// cases failed for their reason, not for want of reaching the rogue).
// Toward node-2's own handshake server, a client with each bad
// certificate, a plain TCP client and slow-loris clients are refused with
// their reasons, the trickling connections are closed within the
// handshake timeout and those beyond the per-peer limit at once.
func TestLabMutualAuthBadPeers(t *testing.T) {
	peers := t.TempDir()
	l := ForTest(t, Options{Nodes: 2, AgentArgs: func(n Node) []string {
		return []string{"--mutual-auth=builtin", "--auth-peer-authorities-dir=" + peers}
	}})
	ctx := context.Background()
	f := firstConnection(t, l, 10*time.Minute)
	var tiefighterID, deathstarID uint32
	for _, e := range f.before.Entries {
		if e.NodeName == l.Nodes[0].Name {
			tiefighterID, deathstarID = e.Remote, e.Local
		}
	}
	if tiefighterID == 0 {
		t.Fatalf("no relation with node-1: %+v", f.before)
	}
	node2 := l.Nodes[1]
	const rogueNode = "node-rogue"
	rogueEntry := func(a authList) bool {
		for _, e := range a.Entries {
			if e.NodeName == rogueNode {
				return true
			}
		}
		return false
	}

	// The rogue's CA is published as a node's; a CA of another trust
	// domain and one nobody published sign the other bad SVIDs.
	ca, foreignTD, unknown := newTestCA(t, "cluster.local"), newTestCA(t, "evil.example"), newTestCA(t, "cluster.local")
	if err := os.WriteFile(filepath.Join(peers, rogueNode+".pem"), ca.pem(), 0o644); err != nil {
		t.Fatal(err)
	}
	tie := fmt.Sprintf("spiffe://cluster.local/identity/%d", tiefighterID)
	now := time.Now()
	expired := ca.leaf(t, []string{tie}, now.Add(-2*time.Hour), now.Add(-time.Hour))
	twoSANs := ca.leaf(t, []string{tie, fmt.Sprintf("spiffe://cluster.local/identity/%d", deathstarID)}, now.Add(-time.Hour), now.Add(time.Hour))
	otherTD := foreignTD.leaf(t, []string{fmt.Sprintf("spiffe://evil.example/identity/%d", tiefighterID)}, now.Add(-time.Hour), now.Add(time.Hour))
	untrusted := unknown.leaf(t, []string{tie}, now.Add(-time.Hour), now.Add(time.Hour))
	valid := ca.leaf(t, []string{tie}, now.Add(-time.Hour), now.Add(time.Hour))

	// The rogue listens where the control plane is (on the lab network);
	// its Pod says its node is there.
	cp := l.Network.ControlPlane
	rl, err := cp.Listen("tcp", netip.AddrPortFrom(network.ControlPlaneIP, 4250).String())
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	rogue := &roguePeer{mode: presenting(expired)}
	go rogue.serve(rl)

	// The rogue node is a Node object (agents leave out Pods of nodes
	// they do not know) with no address: nothing else changes for the
	// control plane's address on the nodes.
	if _, err := l.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: rogueNode}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	real, err := l.Client.CoreV1().Pods("default").Get(ctx, "tiefighter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tiefighter-rogue", Namespace: "default", Labels: real.Labels},
		Spec: corev1.PodSpec{NodeName: rogueNode, ServiceAccountName: real.Spec.ServiceAccountName,
			AutomountServiceAccountToken: real.Spec.AutomountServiceAccountToken,
			Containers:                   []corev1.Container{{Name: "spaceship", Image: real.Spec.Containers[0].Image}}}}
	if pod, err = l.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: network.ControlPlaneIP.String(),
		HostIPs: []corev1.HostIP{{IP: network.ControlPlaneIP.String()}},
		PodIP:   "10.244.200.7", PodIPs: []corev1.PodIP{{IP: "10.244.200.7"}}}
	if _, err := l.Client.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Each case: node-2 tries the rogue, counts the reason, writes no
	// entry; the real tiefighter still lands.
	cases := []struct {
		name, reason string
		mode         func(net.Conn)
	}{
		{"expired SVID", "expired", presenting(expired)},
		{"two URI SANs", "san", presenting(twoSANs)},
		{"another trust domain", "trust_domain", presenting(otherTD)},
		{"unknown CA", "untrusted", presenting(untrusted)},
		{"plain TCP", "not_tls", func(c net.Conn) { _, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n") }},
		{"slow loris", "timeout", trickling},
	}
	// node-2's /metrics count every refusal by its reason too.
	scrape := scraper(t, l)
	refusals := func(reason string) float64 {
		v, _ := scrape(node2.Name, agentMetrics).Value("nodemesh_auth_handshakes_total", "side", "client", "result", reason)
		return v
	}
	for _, tc := range cases {
		a0, err := f.list()
		if err != nil {
			t.Fatal(err)
		}
		m0 := refusals(tc.reason)
		rogue.set(tc.mode)
		// The manager retries with a backoff of up to a minute.
		eventually(t, "node-2 refuses the rogue's "+tc.name, 3*time.Minute, func() error {
			a, err := f.list()
			if err != nil {
				return err
			}
			if rogueEntry(a) {
				t.Fatalf("%s: node-2 authenticated the rogue node: %+v", tc.name, a)
			}
			if a.Client[tc.reason] <= a0.Client[tc.reason] {
				return fmt.Errorf("no %s refusal counted: %v", tc.reason, a.Client)
			}
			if m := refusals(tc.reason); m <= m0 {
				return fmt.Errorf("nodemesh_auth_handshakes_total{side=client,result=%s} is still %v", tc.reason, m)
			}
			return nil
		})
		if out, code := f.land(); code != 0 {
			t.Fatalf("after the rogue's %s, tiefighter does not land: %s", tc.name, out)
		}
	}
	// The control: a valid SVID from the published CA authenticates.
	rogue.set(presenting(valid))
	eventually(t, "node-2 authenticates the rogue with a valid SVID", 3*time.Minute, func() error {
		a, err := f.list()
		if err != nil {
			return err
		}
		if !rogueEntry(a) {
			return fmt.Errorf("no entry for %s: %+v", rogueNode, a)
		}
		return nil
	})

	// Toward node-2's handshake server, from the rogue's address.
	target := netip.AddrPortFrom(node2.IP, 4250).String()
	dial := func() net.Conn {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := cp.Dial(dctx, "tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sni := fmt.Sprintf("%d.cluster.local", deathstarID)
	serverCounts := func() map[string]uint64 {
		a, err := f.list()
		if err != nil {
			t.Fatal(err)
		}
		return a.Server
	}
	// waitClosed waits until the server hangs up on c, bounded.
	waitClosed := func(c net.Conn, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(within))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("node-2's server kept the connection open for %s", within)
		}
		return time.Since(start)
	}
	for _, tc := range []struct {
		name, reason string
		cert         tls.Certificate
	}{
		{"expired SVID", "expired", expired},
		{"two URI SANs", "san", twoSANs},
		{"another trust domain", "trust_domain", otherTD},
		{"unknown CA", "untrusted", untrusted},
	} {
		before := serverCounts()
		c := tls.Client(dial(), &tls.Config{ServerName: sni, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
			Certificates: []tls.Certificate{tc.cert}})
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		err := c.Handshake()
		if err == nil {
			var b [1]byte
			_, err = c.Read(b[:])
		}
		c.Close()
		if err == nil {
			t.Errorf("node-2's server confirmed a client with an %s", tc.name)
		}
		eventually(t, "node-2's server counts the "+tc.name, 30*time.Second, func() error {
			if after := serverCounts(); after[tc.reason] <= before[tc.reason] {
				return fmt.Errorf("no %s counted: %v", tc.reason, after)
			}
			return nil
		})
	}
	before := serverCounts()
	plain := dial()
	_, _ = io.WriteString(plain, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	waitClosed(plain, 30*time.Second)
	plain.Close()
	// Slow loris: as many trickling connections as the per-peer limit
	// (8) are held until the handshake timeout (5 s) cuts them off; the
	// one beyond the limit is closed at once.
	var slow []net.Conn
	for range 9 {
		c := dial()
		slow = append(slow, c)
		_, _ = c.Write([]byte{0x16})
	}
	stop := make(chan struct{})
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, c := range slow {
				_, _ = c.Write([]byte{[]byte{0x03, 0x03, 0x00}[i%3]})
			}
		}
	}()
	var longest time.Duration
	for _, c := range slow {
		longest = max(longest, waitClosed(c, 60*time.Second))
	}
	close(stop)
	for _, c := range slow {
		c.Close()
	}
	t.Logf("node-2's server closed the trickling connections within %s", longest)
	eventually(t, "node-2's server counts the plain TCP client and the slow loris", 30*time.Second, func() error {
		after := serverCounts()
		if after["not_tls"] <= before["not_tls"] || after["timeout"] < before["timeout"]+8 || after["peer_limit"] <= before["peer_limit"] {
			return fmt.Errorf("server counters %v, before %v", after, before)
		}
		return nil
	})
	// Still serving: the rogue's valid SVID still proves tiefighter
	// toward deathstar, and the real tiefighter lands.
	c := tls.Client(dial(), &tls.Config{ServerName: sni, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{valid}})
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var b [1]byte
	if err := c.Handshake(); err != nil {
		t.Fatalf("a valid handshake after the slow loris: %v", err)
	}
	if _, err := c.Read(b[:]); err != nil || b[0] != 0x01 {
		t.Fatalf("no confirmation after the slow loris: %v %x", err, b)
	}
	c.Close()
	if out, code := f.land(); code != 0 {
		t.Fatalf("tiefighter after the attacks: %s", out)
	}
}
