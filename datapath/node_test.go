package datapath_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// The privileged tests below run real TCP connections between workload
// namespaces of a test bed, through the real programs attached to the
// real veths. Each test has its own bed, bpffs and datapath.

const (
	appPort   = 8080
	otherPort = 8081
	denyPort  = 9090
	proxyPort = 15001
)

var smallMaps = datapath.MapSizes{Conntrack: 8192, Auth: 1024, IPCache: 1024, Policy: 4096, EventBytes: 1 << 18}

func ident(i int) model.Identity { return model.Identity(1000 + i) }

type node struct {
	t      *testing.T
	bed    *testbed.Bed
	dp     *datapath.Datapath
	pinDir string
	opts   []datapath.Option
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func newNode(t *testing.T, workloads int, external bool, opts ...datapath.Option) *node {
	t.Helper()
	n := newBareNode(t, workloads, external, opts...)
	n.open()
	n.syncAll()
	for _, w := range n.bed.Workloads {
		for _, port := range []int{appPort, otherPort, denyPort} {
			s, err := w.StartServer(port)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
		}
	}
	return n
}

// newBareNode builds the bed and bpffs but loads no datapath yet.
func newBareNode(t *testing.T, workloads int, external bool, opts ...datapath.Option) *node {
	t.Helper()
	bed := testbed.New(t, testbed.Config{Workloads: workloads, External: external})
	n := &node{t: t, bed: bed, pinDir: filepath.Join(testbed.BPFFS(t), "nodemesh")}
	n.opts = append([]datapath.Option{
		datapath.WithPinDir(n.pinDir),
		datapath.WithNetNS(bed.Node.Path),
		datapath.WithMapSizes(smallMaps),
		datapath.WithLogger(slog.New(slog.NewTextHandler(testLog{t}, nil))),
	}, opts...)
	t.Cleanup(func() {
		if n.dp != nil {
			if err := n.dp.Uninstall(); err != nil {
				t.Errorf("uninstalling datapath: %v", err)
			}
		}
	})
	return n
}

// syncAll writes the bed's endpoints, ipcache and attachments, as an agent
// does after every start.
func (n *node) syncAll() {
	n.t.Helper()
	if err := n.dp.SyncEndpoints(n.endpoints()); err != nil {
		n.t.Fatal(err)
	}
	if err := n.dp.SyncIPCache(n.ipcache()); err != nil {
		n.t.Fatal(err)
	}
	if err := n.dp.SyncAttachments(n.ifindexes()); err != nil {
		n.t.Fatal(err)
	}
	if n.bed.External != nil {
		if err := n.dp.SyncNetdevs([]int{n.bed.External.HostIfIndex}); err != nil {
			n.t.Fatal(err)
		}
	}
}

// open loads (or adopts) the datapath with the node's options.
func (n *node) open() {
	n.t.Helper()
	dp, err := datapath.New(n.opts...)
	if err != nil {
		n.t.Fatalf("loading datapath: %v", err)
	}
	n.dp = dp
}

// restart stops the agent's datapath handle and loads it again, the way
// an agent restart or upgrade does.
func (n *node) restart() {
	n.t.Helper()
	if err := n.dp.Close(); err != nil {
		n.t.Fatal(err)
	}
	n.dp = nil
	n.open()
}

func (n *node) endpoints() []model.Endpoint {
	var eps []model.Endpoint
	for _, w := range n.bed.Workloads {
		eps = append(eps, model.Endpoint{ID: uint16(w.Index + 1), Identity: ident(w.Index), IfIndex: w.HostIfIndex, IPs: []netip.Addr{w.IPv4, w.IPv6}})
	}
	return eps
}

func (n *node) ipcache() []model.IPCacheEntry {
	return []model.IPCacheEntry{
		{Prefix: netip.PrefixFrom(testbed.NodeIPv4, 32), Identity: model.IdentityHost},
		{Prefix: netip.PrefixFrom(testbed.NodeIPv6, 128), Identity: model.IdentityHost},
	}
}

func (n *node) ifindexes() []int {
	var out []int
	for _, w := range n.bed.Workloads {
		out = append(out, w.HostIfIndex)
	}
	return out
}

func (n *node) policy(p model.Policy) {
	n.t.Helper()
	if err := n.dp.SyncPolicy(p); err != nil {
		n.t.Fatalf("syncing policy: %v", err)
	}
}

func (n *node) w(i int) *testbed.Workload { return n.bed.Workloads[i] }

// addrs returns the IPv4 and IPv6 service addresses of workload i.
func (n *node) addrs(i int, port int) []netip.AddrPort {
	w := n.w(i)
	return []netip.AddrPort{netip.AddrPortFrom(w.IPv4, uint16(port)), netip.AddrPortFrom(w.IPv6, uint16(port))}
}

// connect opens a connection and checks that data makes the round trip.
func connect(from *testbed.Namespace, to netip.AddrPort) (*testbed.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := testbed.Connect(ctx, from, to)
	if err != nil {
		return nil, err
	}
	if err := c.Echo([]byte("hello through the datapath"), 3*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func mustConnect(t *testing.T, from *testbed.Namespace, to netip.AddrPort) *testbed.Conn {
	t.Helper()
	c, err := connect(from, to)
	if err != nil {
		t.Fatalf("%s -> %s should connect: %v", from.Name, to, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustNotConnect expects the SYN to vanish: dropped packets give no RST,
// so the attempt runs into its timeout.
func mustNotConnect(t *testing.T, from *testbed.Namespace, to netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	c, err := testbed.Connect(ctx, from, to)
	if err == nil {
		c.Close()
		t.Fatalf("%s -> %s connected, want it dropped", from.Name, to)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "i/o timeout") {
		t.Fatalf("%s -> %s failed with %v, want a timeout (silent drop)", from.Name, to, err)
	}
}

func (n *node) counter(reason model.Reason, dir model.Direction) uint64 {
	n.t.Helper()
	cs, err := n.dp.Counters()
	if err != nil {
		n.t.Fatal(err)
	}
	return cs[datapath.CounterKey{Reason: reason, Direction: dir}].Packets
}

// waitEvent reads events until one satisfies match.
func waitEvent(t *testing.T, r *datapath.EventReader, match func(datapath.Event) bool) datapath.Event {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		r.SetDeadline(deadline)
		e, err := r.Read()
		if err != nil {
			t.Fatalf("waiting for event: %v", err)
		}
		if match(e) {
			return e
		}
	}
}

func enforce(entries map[model.Identity]model.Enforcement, rows ...model.PolicyEntry) model.Policy {
	return model.Policy{Enforce: entries, Entries: rows}
}
