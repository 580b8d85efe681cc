package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/flow/observer"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/xds/accesslog"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// policyNode is one node of the eBPF test bed running the whole stack:
// the agent (policy compilation, xDS, access logs, flows) in this process,
// the eBPF datapath on the bed's node namespace, and the builtin proxy as
// a child process inside that namespace. Workloads are the bed's
// namespaces, declared to the agent as Pods with their addresses.
type policyNode struct {
	t       testing.TB
	bed     *testbed.Bed
	dp      *datapath.Datapath
	agent   *agent.Agent
	flows   *flow.Store
	apiSock string
	// hubbleSock serves Hubble's Observer API from flows, which also
	// records the datapath's drops and redirects.
	hubbleSock string
	// podCgroup is the cgroup the datapath's socket hooks translate
	// Service connects in (nodeOpts.services).
	podCgroup string
}

// policyPorts are the policy listeners' ports in the node namespace.
var policyPorts = policy.Listeners{Address: "0.0.0.0", IngressHTTP: 15101, EgressHTTP: 15102, IngressKafka: 15103, EgressKafka: 15104, OriginalSource: true}

func startPolicyNode(t testing.TB, workloads int) *policyNode {
	t.Helper()
	return newPolicyNode(t, workloads, true)
}

// newPolicyNode builds the node; without the datapath nothing steers
// traffic to the proxy (the caller does, e.g. with iptables TPROXY) and
// the proxy connects upstream from the node's own address.
func newPolicyNode(t testing.TB, workloads int, withDatapath bool) *policyNode {
	t.Helper()
	return newPolicyNodeWith(t, workloads, withDatapath, func(s *server.Server) dataplane.Publisher { return publish.New(s) })
}

// newPolicyNodeWith is newPolicyNode with the agent's publisher made by
// publisher (e.g. one that makes the proxy reject updates).
func newPolicyNodeWith(t testing.TB, workloads int, withDatapath bool, publisher func(*server.Server) dataplane.Publisher) *policyNode {
	t.Helper()
	return newPolicyNodeOpts(t, nodeOpts{workloads: workloads, withDatapath: withDatapath, publisher: publisher})
}

// nodeOpts are newPolicyNodeOpts' settings.
type nodeOpts struct {
	workloads    int
	withDatapath bool
	// publisher makes the agent's publisher; nil: publish.New.
	publisher func(*server.Server) dataplane.Publisher
	// proxyCPUs, when set, pins the proxy process (taskset -c syntax).
	proxyCPUs string
	// eventLoops is the proxy's event loop count as nodemesh-proxy
	// --event-loops takes it: a count, 0 for a goroutine per connection;
	// empty: nodemesh-proxy's default (auto, one loop per CPU).
	eventLoops string
	// services makes the node steer Services as nodemesh-agent
	// --datapath --datapath-cgroup does: the datapath's Service table,
	// its socket hooks on a Pod cgroup (policyNode.podCgroup, where
	// clients must run: podClient), and listeners of GAMMA routes and
	// CiliumEnvoyConfigs on the node's address. Needs withDatapath.
	services bool
	// noOriginalSource is --policy-original-source=false: proxied
	// connections come from the node.
	noOriginalSource bool
	// gatewayMark gives the proxy's connections to Gateway backends the
	// mark nodemesh-agent --datapath gives them (reserved ingress
	// identity). Needs withDatapath.
	gatewayMark bool
}

func newPolicyNodeOpts(t testing.TB, o nodeOpts) *policyNode {
	t.Helper()
	workloads, withDatapath, publisher := o.workloads, o.withDatapath, o.publisher
	if publisher == nil {
		publisher = func(s *server.Server) dataplane.Publisher { return publish.New(s) }
	}
	bed := testbed.New(t, testbed.Config{Workloads: workloads})
	log := slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := &policyNode{t: t, bed: bed}

	listeners := policyPorts
	if withDatapath {
		pinDir := filepath.Join(testbed.BPFFS(t), "nodemesh")
		dp, err := datapath.New(datapath.WithPinDir(pinDir),
			datapath.WithNetNS(bed.Node.Path), datapath.WithLogger(log), datapath.WithProxyIdentity())
		if err != nil {
			t.Fatalf("loading the datapath: %v", err)
		}
		t.Cleanup(func() {
			if err := dp.Uninstall(); err != nil {
				t.Errorf("uninstalling the datapath: %v", err)
			}
		})
		n.dp = dp
		listeners.ConntrackMap = datapath.ConntrackPin(pinDir)
	}
	if !withDatapath || o.noOriginalSource {
		listeners.OriginalSource = false
	}

	dir, err := os.MkdirTemp("", "nm-pol")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	xdsSock := dir + "/xds.sock"
	n.apiSock = dir + "/agent.sock"
	srv := server.New(server.WithLogger(log))
	n.flows = flow.NewStore()
	accesslog.New(n.flows, log).Register(srv)
	l, err := server.ListenUnix(xdsSock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })

	mark, _ := datapath.ProxyMark(0)
	compiler, err := policy.New(policy.Options{Listeners: listeners, UpstreamMark: mark, AccessLogSocket: xdsSock})
	if err != nil {
		t.Fatal(err)
	}
	ifaces := bedInterfaces{}
	for _, w := range bed.Workloads {
		ifaces[w.IPv4], ifaces[w.IPv6] = w.HostIfIndex, w.HostIfIndex
	}
	cfg := agent.Config{
		Publisher: publisher(srv), AddressPool: gatewayPool, Logger: log,
		Policy: compiler, HostIPs: []netip.Addr{testbed.NodeIPv4, testbed.NodeIPv6},
		Interfaces: ifaces, Flows: n.flows,
	}
	if n.dp != nil {
		cfg.Datapath = n.dp
		cfg.ProxyIdentity = true
	}
	if o.gatewayMark {
		cfg.GatewayUpstreamMark, _ = datapath.ProxyRouteMark(model.IdentityIngress)
	}
	if o.services {
		n.steerServices(&cfg, listeners.OriginalSource)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go a.ServeAPI(ctx, n.apiSock)
	n.serveHubble(ctx, dir+"/hubble.sock", log)
	n.startProxy(xdsSock, o.proxyCPUs, o.eventLoops)
	return n
}

// serveHubble serves the flows as Hubble's Observer API and, with the
// datapath, records its events as flows, as nodemesh-agent does.
func (n *policyNode) serveHubble(ctx context.Context, sock string, log *slog.Logger) {
	t := n.t
	n.hubbleSock = sock
	l, err := server.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	obs := observer.New(n.flows, observer.WithNodeName("bed"), observer.WithLogger(log))
	// Stops when the bed's context is cancelled at cleanup.
	go obs.Serve(ctx, l)
	if n.dp == nil {
		return
	}
	events, err := n.dp.Events()
	if err != nil {
		t.Fatal(err)
	}
	recorded := make(chan error, 1)
	go func() { recorded <- agent.RecordEvents(events, n.flows, log) }()
	t.Cleanup(func() {
		events.Close()
		if err := <-recorded; !errors.Is(err, datapath.ErrClosed) {
			t.Errorf("recording datapath events: %v", err)
		}
	})
}

// bedInterfaces knows each workload's host-side veth, as a CNI would.
type bedInterfaces map[netip.Addr]int

func (b bedInterfaces) InterfaceOf(a netip.Addr) (int, error) {
	if i, ok := b[a]; ok {
		return i, nil
	}
	return 0, fmt.Errorf("%s is not a workload of the bed", a)
}

// startProxy runs the proxy in the node namespace and waits until it is
// connected to the agent.
func (n *policyNode) startProxy(xdsSock, cpus, loops string) {
	t := n.t
	node := "bed-" + strings.ReplaceAll(t.Name(), "/", "-")
	cmd := pinnedCommand(n.bed.Node, cpus)
	cmd.Env = append(os.Environ(), proxyChildEnv+"=unix://"+xdsSock, proxyChildNodeEnv+"="+node)
	if loops != "" {
		cmd.Env = append(cmd.Env, proxyChildLoopsEnv+"="+loops)
	}
	w := newTestWriter(t)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the proxy: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("the proxy did not stop within 10s")
		}
	})
	n.waitStatus("the proxy connects", func(st *api.Status) bool {
		for _, p := range st.Proxies {
			if p.Connected {
				return true
			}
		}
		return false
	})
}

// waitStatus waits, on the agent's change events, until ok accepts its
// status.
func (n *policyNode) waitStatus(what string, ok func(*api.Status) bool) *api.Status {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := n.agent.WaitStatus(ctx, ok)
	if err != nil {
		n.t.Fatalf("timed out waiting until %s", what)
	}
	return st
}

// waitUntil polls cond: for what no event announces (a flow through
// the datapath, a connection attempt).
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pod renders a Pod for workload w.
func pod(name string, w *testbed.Workload, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ls []string
	for _, k := range keys {
		ls = append(ls, k+": "+labels[k])
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, labels: {%s}}
status: {podIPs: [{ip: %s}, {ip: "%s"}]}
---
`, name, strings.Join(ls, ", "), w.IPv4, w.IPv6)
}

// apply hands YAML to the agent and waits until the proxy acknowledged
// the result and the datapath holds its rows; every policy must be
// enforced as written.
func (n *policyNode) apply(docs string) *api.Status {
	n.t.Helper()
	st := n.applyLenient(docs)
	for _, p := range st.Policy.Policies {
		if p.State != policy.Enforced {
			n.t.Fatalf("policy %s/%s: %s: %s", p.Namespace, p.Name, p.State, p.Error)
		}
	}
	return st
}

// applyLenient is apply without the check that every policy is enforced.
func (n *policyNode) applyLenient(docs string) *api.Status {
	t := n.t
	t.Helper()
	objs, err := input.Decode("test.yaml", []byte(docs))
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.agent.Apply(context.Background(), snap, nil); err != nil {
		t.Fatalf("applying: %v", err)
	}
	var rejected string
	n.waitStatus("the proxy acknowledges the configuration", func(st *api.Status) bool {
		for _, p := range st.Proxies {
			for _, ts := range p.Types {
				if ts.Nack != nil && ts.Nack.Version == st.Versions[ts.Type] {
					rejected = fmt.Sprintf("proxy rejected %s: %s", ts.Type, ts.Nack.Message)
					return true
				}
			}
			if p.Connected && p.AckedAll(st.Versions) {
				return true
			}
		}
		return false
	})
	if rejected != "" {
		t.Fatal(rejected)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.agent.WaitDatapath(ctx); err != nil {
		t.Fatalf("datapath: %v", err)
	}
	return n.agent.Status()
}

// httpClient sends requests from inside workload w.
func httpClient(w *testbed.Workload) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return w.DialWith(ctx, &net.Dialer{Timeout: 3 * time.Second}, network, addr)
			},
			DisableKeepAlives: true,
		},
	}
}

// serveHTTP runs handler in workload w on port.
func serveHTTP(t testing.TB, w *testbed.Workload, port int, h http.Handler) {
	t.Helper()
	l, err := w.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// cannotConnect asserts that w's connection attempts to addr are dropped.
func cannotConnect(t *testing.T, w *testbed.Workload, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := w.DialWith(ctx, &net.Dialer{}, "tcp", addr)
	if err == nil {
		c.Close()
		t.Fatalf("%s connected to %s; the datapath should drop it", w.IPv4, addr)
	}
}

// flowsMatching waits until the agent's flow API returns at least min
// flows matching q, and returns them.
func (n *policyNode) flowsMatching(q api.FlowQuery, min int) []flow.Flow {
	t := n.t
	t.Helper()
	var got []flow.Flow
	waitUntil(t, fmt.Sprintf("%d flows matching %+v", min, q.Filter), func() bool {
		got = got[:0]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := api.FetchFlows(ctx, n.apiSock, q, func(f flow.Flow) error {
			got = append(got, f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return len(got) >= min
	})
	return got
}
