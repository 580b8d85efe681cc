package lab

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/internal/spiretest"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// authList is what `nodemesh auth list -o json` prints (the fields the
// test reads).
type authList struct {
	Ready   bool   `json:"ready"`
	Error   string `json:"error"`
	Pairs   int    `json:"pairs"`
	Entries []struct {
		Local    uint32    `json:"local"`
		Remote   uint32    `json:"remote"`
		NodeName string    `json:"nodeName"`
		Expiry   time.Time `json:"expiry"`
	} `json:"entries"`
	Manager           map[string]uint64 `json:"manager"`
	Client            map[string]uint64 `json:"client"`
	Server            map[string]uint64 `json:"server"`
	AuthRequiredDrops uint64            `json:"authRequiredDrops"`
}

// authRequired lets the empire (the ships and the deathstar itself) reach
// the deathstar only with mutual authentication.
const authRequired = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: empire-authenticated}
spec:
  endpointSelector: {matchLabels: {org: empire, class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    authentication: {mode: required}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
`

// svidTTL is the lab's SVID lifetime in TestLabMutualAuth: short, so the
// test sees relations renewed across rotations.
const svidTTL = time.Minute

// TestLabMutualAuth runs mutual authentication on two nodes with the
// built-in issuer on each (authorities exchanged through a shared
// directory): the deathstar on node-2 admits the empire only
// authenticated. node-2's agent proves every relation the policy allows
// eagerly, so tiefighter's first connection from node-1 succeeds at once:
// no auth-required drop on node-2, no SYN retransmitted by the client.
// go-spiffe's X509Source in tiefighter's namespace gets tiefighter's SVID
// from node-1's Workload API. After every first proof expired (SVIDs of a
// minute, rotated), the relation was renewed and tiefighter still lands.
// Then node-1's published authority is replaced by a foreign CA: node-2
// no longer trusts what node-1 presents, revokes the entry and the pair
// stays blocked. Deleting tiefighter withdraws its relation.
func TestLabMutualAuth(t *testing.T) {
	peers := t.TempDir()
	// The lab's default chart values run the datapath;
	// these add mutual authentication.
	l := ForTest(t, Options{Nodes: 2, AgentArgs: func(n Node) []string {
		return []string{"--mutual-auth=builtin", "--auth-peer-authorities-dir=" + peers, "--auth-svid-ttl=" + svidTTL.String()}
	}})
	ctx := context.Background()
	f := firstConnection(t, l, svidTTL/4)
	s, node2, list, argv, land, landURL := f.s, l.Nodes[1], f.list, f.argv, f.land, f.landURL
	before, after := f.before, f.after
	var out string
	var code int
	// The agents' /metrics (expfmt) count the handshakes that proved the
	// relations: node-2 dialled as the client, node-1 answered.
	scrape := scraper(t, l)
	handshakes := func(node, side, result string) float64 {
		v, _ := scrape(node, agentMetrics).Value("nodemesh_auth_handshakes_total", "side", side, "result", result)
		return v
	}
	eventually(t, "the agents' metrics count the successful handshakes", 30*time.Second, func() error {
		if c, s := handshakes(node2.Name, "client", "ok"), handshakes(l.Nodes[0].Name, "server", "ok"); c < 1 || s < 1 {
			return fmt.Errorf("node-2 counted %v successful client handshakes, node-1 %v server ones", c, s)
		}
		return nil
	})
	untrusted0 := handshakes(node2.Name, "client", "untrusted")
	if untrusted0 != 0 {
		t.Errorf("node-2 counted %v untrusted handshakes before any CA was forged", untrusted0)
	}
	// Policy status: Enforced on node-2 (the source is ready).
	eventually(t, "the policy is Enforced on node-2", 30*time.Second, func() error {
		return policyState(ctx, l, node2.Name, "empire-authenticated", "Enforced")
	})

	// go-spiffe's own Workload API client, started in tiefighter's
	// network namespace with the socket the lab gave the Pod, gets
	// tiefighter's SVID (the identity node-2 proved for it) from node-1's
	// agent, and a bundle that verifies it.
	var tiefighterID uint32
	for _, e := range before.Entries {
		if e.NodeName == l.Nodes[0].Name {
			tiefighterID = e.Remote
		}
	}
	sock := podEnv(t, s, "tiefighter", "SPIFFE_ENDPOINT_SOCKET")
	if want := "unix://" + WorkloadSocket(l.Nodes[0]); sock != want {
		t.Fatalf("tiefighter's SPIFFE_ENDPOINT_SOCKET is %q, want %q", sock, want)
	}
	helper := argv("tiefighter", "env", "SPIFFE_ENDPOINT_SOCKET="+sock, spiffeHelperEnv+"=1", os.Args[0], "-test.run=^TestLabSPIFFEHelper$")
	out, code = run(t, helper, "")
	if want := fmt.Sprintf("svid=spiffe://cluster.local/identity/%d verified", tiefighterID); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("go-spiffe in tiefighter's namespace: exit %d, want %q in:\n%s", code, want, out)
	}

	// Rotation: SVIDs live a minute here. Once every proof made before is
	// past its expiry, node-2 has re-authenticated the relation and
	// tiefighter still lands at the first try, without a drop.
	var proven time.Time
	for _, e := range after.Entries {
		if e.NodeName == l.Nodes[0].Name {
			proven = e.Expiry
		}
	}
	var renewed authList
	eventually(t, "node-2 re-authenticates before the first proof expires", 3*svidTTL, func() error {
		a, err := list()
		if err != nil {
			return err
		}
		if time.Now().Before(proven.Add(time.Second)) {
			return fmt.Errorf("the first proof (until %s) has not expired yet", proven)
		}
		for _, e := range a.Entries {
			if e.NodeName == l.Nodes[0].Name && e.Expiry.After(time.Now()) {
				renewed = a
				return nil
			}
		}
		return fmt.Errorf("no valid entry for node-1: %+v", a)
	})
	if out, code := land(); code != 0 || !strings.Contains(out, "Ship landed") {
		t.Fatalf("tiefighter after rotation: exit %d: %s", code, out)
	}
	if a, err := list(); err != nil || a.AuthRequiredDrops != renewed.AuthRequiredDrops || renewed.AuthRequiredDrops != after.AuthRequiredDrops {
		t.Errorf("auth-required drops across rotation: %d, then %d: %v", after.AuthRequiredDrops, a.AuthRequiredDrops, err)
	}

	// node-1's published authority is replaced by a CA of the same trust
	// domain that did not sign what node-1 presents: node-2 re-verifies,
	// rejects node-1 and deletes the entry; the ship stays blocked.
	forged := foreignCA(t)
	if err := os.WriteFile(filepath.Join(peers, l.Nodes[0].Name+".pem"), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node-2 revokes the relation with node-1", time.Minute, func() error {
		a, err := list()
		if err != nil {
			return err
		}
		for _, e := range a.Entries {
			if e.NodeName == l.Nodes[0].Name {
				return fmt.Errorf("entry still there: %+v", a)
			}
		}
		if a.Manager["revoked"] == 0 || a.Client["untrusted"] == 0 {
			return fmt.Errorf("no revocation counted: %+v", a)
		}
		return nil
	})
	eventually(t, "node-2's metrics count the untrusted handshake and the revocation", 30*time.Second, func() error {
		m := scrape(node2.Name, agentMetrics)
		u, _ := m.Value("nodemesh_auth_handshakes_total", "side", "client", "result", "untrusted")
		r, _ := m.Value("nodemesh_auth_events_total", "event", "revoked")
		if u <= untrusted0 || r < 1 {
			return fmt.Errorf("untrusted client handshakes %v (before %v), revoked entries %v", u, untrusted0, r)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if out, code := run(t, argv("tiefighter", "curl", "-sS", "--max-time", "2", "-XPOST", landURL), ""); code == 0 {
			t.Fatalf("tiefighter landed without a valid proof: %s", out)
		}
	}
	if a, err := list(); err != nil || a.AuthRequiredDrops == after.AuthRequiredDrops {
		t.Errorf("blocked attempts not counted as auth-required drops: %+v %v", a, err)
	}
	// The drops show in node-2's flows, with tiefighter as the source.
	flows, code := run(t, []string{filepath.Join(f.bin, "nodemesh"), "flows", "--verdict", "DROPPED", "-o", "json",
		"--socket", filepath.Join(node2.StateDir, "agent.sock")}, "")
	want := fmt.Sprintf(`"identity":%d`, tiefighterID)
	found := false
	for _, line := range strings.Split(flows, "\n") {
		found = found || (strings.Contains(line, `"reason":"auth-required"`) && strings.Contains(line, `"source":{"address":`) &&
			strings.Contains(line[:max(strings.Index(line, `"destination"`), 0)], want))
	}
	if code != 0 || !found {
		t.Errorf("no auth-required drop from tiefighter (%s) in node-2's flows (exit %d):\n%s", want, code, flows)
	}

	// tiefighter goes: its relation is no longer required.
	if err := l.Client.CoreV1().Pods("default").Delete(ctx, "tiefighter", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "tiefighter's relation is withdrawn", time.Minute, func() error {
		a, err := list()
		if err != nil {
			return err
		}
		if a.Pairs != 1 || len(a.Entries) != 1 || a.Entries[0].NodeName != "" {
			return fmt.Errorf("auth state %+v", a)
		}
		return nil
	})
}

// netstatField reads one counter of /proc/net/netstat (a header line and
// a value line per group).
func netstatField(text, group, field string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	var header []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != group+":" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, name := range header {
			if name == field && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
		return 0, fmt.Errorf("no %s in %s", field, group)
	}
	return 0, fmt.Errorf("no %s group in:\n%s", group, text)
}

// curlTime reads one of the name=seconds pairs curl's -w printed last.
func curlTime(t *testing.T, out, name string) time.Duration {
	t.Helper()
	i := strings.LastIndex(out, name+"=")
	if i < 0 {
		t.Fatalf("no %s time in %q", name, out)
	}
	f := strings.Fields(out[i+len(name)+1:])
	if len(f) == 0 {
		t.Fatalf("no %s time in %q", name, out)
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(secs * float64(time.Second))
}

// foreignCA is a CA certificate of the lab's trust domain that signed
// nothing of the lab's.
func foreignCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := url.Parse("spiffe://cluster.local")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not node-1"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		MaxPathLen: 0, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, URIs: []*url.URL{id}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// policyState checks the state node reports for a CiliumNetworkPolicy in
// its NodeProxyStatus.
func policyState(ctx context.Context, l *Lab, node, name, want string) error {
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		return err
	}
	u, err := dyn.Resource(v1alpha1.NodeProxyStatusResource).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	pols, _, _ := unstructured.NestedSlice(u.Object, "status", "policy", "policies")
	for _, p := range pols {
		if m, ok := p.(map[string]any); ok && m["name"] == name && m["kind"] == "CiliumNetworkPolicy" {
			if m["state"] != want {
				return fmt.Errorf("%s: %v", node, m)
			}
			return nil
		}
	}
	return fmt.Errorf("%s reports no %s: %v", node, name, u.Object["status"])
}

// spiffeHelperEnv makes TestLabSPIFFEHelper run: the lab test starts this
// test binary again inside a Pod's network namespace.
const spiffeHelperEnv = "NODEMESH_LAB_SPIFFE_HELPER"

// TestLabSPIFFEHelper is not a test of its own: TestLabMutualAuth runs it
// in a Pod's namespace. It fetches the SVID and bundle with go-spiffe's
// X509Source (from SPIFFE_ENDPOINT_SOCKET), verifies the SVID against the
// bundle and prints its ID.
func TestLabSPIFFEHelper(t *testing.T) {
	if os.Getenv(spiffeHelperEnv) != "1" {
		t.Skip("run by TestLabMutualAuth inside a Pod's network namespace")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, src); err != nil {
		t.Fatalf("the SVID does not verify against the bundle: %v", err)
	}
	fmt.Printf("svid=%s verified\n", svid.ID)
}

// podEnv reads a variable from the environment of a process of the Pod
// (the first in its network namespace).
func podEnv(t *testing.T, s *State, pod, name string) string {
	t.Helper()
	argv, err := s.ExecArgv(context.Background(), "default", pod, "", []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	ns := ""
	for i := 0; i+3 < len(argv); i++ {
		if argv[i] == "ip" && argv[i+1] == "netns" && argv[i+2] == "exec" {
			ns = argv[i+3]
			break
		}
	}
	if ns == "" {
		t.Fatalf("no `ip netns exec` in %v", argv)
	}
	out, code := run(t, []string{"ip", "netns", "pids", ns}, "")
	if code != 0 {
		t.Fatalf("ip netns pids %s: %s", ns, out)
	}
	for _, pid := range strings.Fields(out) {
		b, err := os.ReadFile("/proc/" + pid + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				return v
			}
		}
	}
	t.Fatalf("no process of %s has %s", pod, name)
	return ""
}

// authFixture is the shared part of the mutual-authentication lab tests.
type authFixture struct {
	s             *State
	bin           string
	list          func() (authList, error)
	argv          func(pod string, cmd ...string) []string
	land          func() (string, int)
	landURL       string
	before, after authList
}

// firstConnection places the Star Wars Pods (ships on node-1, deathstar on
// node-2), checks the Service path with xwing, applies authRequired, waits
// until node-2 proved both relations it allows (each valid for at least
// minLife), and makes tiefighter's first connection: it must land at once,
// its SYN not retransmitted, with no auth-required drop on node-2.
func firstConnection(t *testing.T, l *Lab, minLife time.Duration) *authFixture {
	t.Helper()
	ctx := context.Background()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := BuildMesh(root)
	if err != nil {
		t.Fatal(err)
	}
	node2 := l.Nodes[1]
	list := func() (authList, error) {
		var a authList
		out, code := run(t, []string{filepath.Join(bin, "nodemesh"), "auth", "list", "-o", "json", "--socket", filepath.Join(node2.StateDir, "agent.sock")}, "")
		if code != 0 {
			return a, fmt.Errorf("nodemesh auth list: exit %d: %s", code, out)
		}
		return a, json.Unmarshal([]byte(out), &a)
	}
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/starwars-placed.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	argv := func(pod string, cmd ...string) []string {
		v, err := s.ExecArgv(ctx, "default", pod, "", cmd)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	landURL := "http://deathstar.default.svc.cluster.local/v1/request-landing"
	// The Service path works (kube-proxy on node-1 has the deathstar's
	// endpoints) before any policy; xwing checks it, so tiefighter's first
	// connection is still to come.
	eventually(t, "xwing lands without a policy", time.Minute, func() error {
		if out, code := run(t, argv("xwing", "curl", "-sS", "--max-time", "3", "-XPOST", landURL), ""); code != 0 {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		return nil
	})
	policyFile := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(policyFile, []byte(authRequired), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ApplyPaths(ctx, l.Config, []string{policyFile}); err != nil {
		t.Fatal(err)
	}

	// Both relations the policy allows — deathstar with tiefighter on
	// node-1 and with itself — are proven before anyone connects.
	var before authList
	eventually(t, "node-2 authenticates every allowed relation", time.Minute, func() error {
		a, err := list()
		if err != nil {
			return err
		}
		valid, remote := 0, false
		for _, e := range a.Entries {
			if time.Until(e.Expiry) > minLife {
				valid++
				remote = remote || e.NodeName == l.Nodes[0].Name
			}
		}
		if !a.Ready || a.Pairs != 2 || valid != 2 || !remote {
			return fmt.Errorf("auth state %+v", a)
		}
		before = a
		return nil
	})
	synRetrans := func() uint64 {
		out, code := run(t, argv("tiefighter", "cat", "/proc/net/netstat"), "")
		if code != 0 {
			t.Fatalf("reading the client's TCP statistics: %s", out)
		}
		n, err := netstatField(out, "TcpExt", "TCPSynRetrans")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	land := func() (string, int) {
		return run(t, argv("tiefighter", "curl", "-sS", "--max-time", "5", "-w", "\nlookup=%{time_namelookup} connect=%{time_connect}", "-XPOST", landURL), "")
	}
	retransBefore := synRetrans()
	out, code := land()
	if code != 0 || !strings.Contains(out, "Ship landed") {
		a, err := list()
		t.Fatalf("tiefighter's first connection: exit %d: %s\nnode-2's auth state: %+v %v", code, out, a, err)
	}
	if connect := curlTime(t, out, "connect") - curlTime(t, out, "lookup"); connect >= time.Second {
		t.Errorf("the first connection took %s to establish: its SYN was retransmitted", connect)
	}
	if r := synRetrans(); r != retransBefore {
		t.Errorf("the client retransmitted %d SYNs", r-retransBefore)
	}
	after, err := list()
	if err != nil {
		t.Fatal(err)
	}
	if after.AuthRequiredDrops != before.AuthRequiredDrops {
		t.Errorf("node-2 dropped %d packets for lack of an auth entry", after.AuthRequiredDrops-before.AuthRequiredDrops)
	}
	return &authFixture{s: s, bin: bin, list: list, argv: argv, land: land, landURL: landURL, before: before, after: after}
}

// TestLabMutualAuthSPIRE runs the same first connection with SPIRE as the
// identity source: a real spire-server and a spire-agent per node (on
// this machine, their sockets reachable from the lab's namespaces), the
// nodemesh agents as the spire-agents' authorized delegates, and
// nodemesh-controller registering each node's identities. node-2 proves
// both relations eagerly with SVIDs from SPIRE, tiefighter's first
// connection lands without a drop or a retransmitted SYN, and the policy
// is Enforced.
func TestLabMutualAuthSPIRE(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	srv := spiretest.ForTest(t, spiretest.ServerOptions{TrustDomain: td})
	delegate := spiffeid.RequireFromPath(td, "/nodemesh/agent")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := map[string]string{}
	for _, name := range []string{"node-1", "node-2"} {
		ag, err := srv.StartAgent(ctx, spiretest.AgentOptions{Name: name, AuthorizedDelegates: []spiffeid.ID{delegate}})
		if err != nil {
			t.Fatalf("%v\n%s", err, srv.Logs(40))
		}
		// nodemesh-agent runs as this test's user.
		if _, err := ag.Register(ctx, delegate, "unix:uid:"+strconv.Itoa(os.Getuid()), "unix:gid:"+strconv.Itoa(os.Getgid())); err != nil {
			t.Fatal(err)
		}
		admin[name] = ag.AdminSocket
	}
	l := ForTest(t, Options{Nodes: 2, ControllerArgs: []string{"--spire-server-socket=" + srv.Socket, "--spire-sync-interval=2s"},
		AgentArgs: func(n Node) []string {
			return []string{"--mutual-auth=spire", "--auth-spire-admin-socket=" + admin[n.Name]}
		}})
	defer func() {
		if t.Failed() {
			t.Logf("SPIRE logs:\n%s", srv.Logs(40))
		}
	}()
	firstConnection(t, l, 10*time.Minute)
	eventually(t, "the policy is Enforced on node-2", 30*time.Second, func() error {
		return policyState(context.Background(), l, l.Nodes[1].Name, "empire-authenticated", "Enforced")
	})
}
