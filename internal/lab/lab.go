package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodemesh/nodemesh/api"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/chart"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/lab/dns"
	"github.com/nodemesh/nodemesh/internal/lab/lbipam"
	"github.com/nodemesh/nodemesh/internal/lab/network"
	"github.com/nodemesh/nodemesh/internal/lab/node"
	"github.com/nodemesh/nodemesh/internal/lab/scheduler"
	"github.com/nodemesh/nodemesh/internal/lab/workload"
)

// Addresses every lab uses (see doc.go).
var (
	// DNSServiceIP is the cluster DNS Service's ClusterIP (kube-system/kube-dns).
	DNSServiceIP = netip.MustParseAddr("10.96.0.10")
)

// ClusterDomain is the lab's DNS domain.
const ClusterDomain = "cluster.local"

// DefaultAddressPool is the controller's --address-pool, unused while
// the chart's gatewayAPI.loadBalancerService gives Gateways and Ingresses
// LoadBalancer Services (the default); with it off, addresses come from
// it: loopback addresses of each node's namespace.
const DefaultAddressPool = "127.0.50.0/24"

// DefaultLoadBalancerPool is where the lab's load balancer (package
// lbipam) assigns the addresses of LoadBalancer Services, Gateways'
// among them: on the lab network, past the nodes' addresses, so a
// client on the lab network that is not a node reaches them.
const DefaultLoadBalancerPool = "10.250.0.192/27"

// Options configure a lab.
type Options struct {
	// Dir holds the lab's state: logs, kubeconfigs, Pod directories,
	// agent sockets. Required; Close leaves it (Down removes it).
	Dir string
	// Nodes is the number of nodes (default 1).
	Nodes int
	// Binaries are the Kubernetes programs. Required (controlplane.Build).
	Binaries *controlplane.Binaries
	// BinDir holds nodemesh-lab, nodemesh-agent, nodemesh-proxy and
	// nodemesh-controller. Required: nodemesh-lab runs the built-in
	// workloads (`nodemesh lab workload`), the others the mesh.
	BinDir string
	// NoMesh leaves nodemesh out (no controller, agents or proxies): a
	// plain cluster.
	NoMesh bool
	// NoPolicy runs the agents without the datapath and network policy
	// (nodemesh's Gateway API mode only). By default every node's agent
	// loads the datapath on the node's namespace and enforces the network
	// policy applied through the API server (the agent.datapath values,
	// see doc.go).
	NoPolicy bool
	// AgentArgs, when set, returns extra nodemesh-agent flags for a node,
	// the chart's agent.extraArgs: after the chart's own (a later flag
	// wins).
	AgentArgs func(Node) []string
	// ControllerArgs are extra nodemesh-controller flags
	// (--spire-server-socket …), the chart's controller.extraArgs.
	ControllerArgs []string
	// ChartValues are laid over the lab's values of the chart (see
	// doc.go, "The chart"), as a later `helm --values` file would be:
	// maps merge key by key, anything else replaces.
	ChartValues map[string]any
	// Helm is the helm binary that renders the chart (default: the one
	// built from the pinned module, chart.Helm).
	Helm string
	// AddressPool is nodemesh-controller's Ingress address pool
	// (default DefaultAddressPool).
	AddressPool string
	// LoadBalancerPool is the lab load balancer's pool, which Gateways'
	// Services get their addresses from (default DefaultLoadBalancerPool).
	LoadBalancerPool string
	// GatewayChannel is the Gateway API CRD channel installed, "standard"
	// (default) or "experimental".
	GatewayChannel string
	// Images adds image mappings, replacing built-in ones for the same
	// repository (the conformance harness maps the coredns image to its
	// stand-in).
	Images []node.Image
	// Log receives the lab's own progress (default: discarded).
	Log *slog.Logger
}

// Node describes one lab node.
type Node struct {
	Name    string       `json:"name"`
	IP      netip.Addr   `json:"ip"`
	PodCIDR netip.Prefix `json:"podCIDR"`
	// Netns is the node's network namespace (`ip netns exec` name) and
	// NetnsPath its file.
	Netns     string `json:"netns"`
	NetnsPath string `json:"netnsPath"`
	// StateDir holds the node's agent sockets: xds.sock and agent.sock.
	StateDir string `json:"stateDir"`
	// Cgroup is the cgroup v2 the node's Pods (and `lab exec` commands)
	// run in, like kubelet's kubepods, as a path in the hierarchy (as
	// /proc/<pid>/cgroup shows it); empty when the machine has no cgroup
	// v2 hierarchy. Give it to the node's agent as --datapath-cgroup.
	Cgroup string `json:"cgroup,omitempty"`
	// PinDir is where the node's datapath pins its maps and links, on the
	// lab's bpf filesystem ("" with Options.NoPolicy).
	PinDir string `json:"pinDir,omitempty"`
}

// Lab is a running lab. Create it with Start and stop it with Close.
type Lab struct {
	// ID prefixes every network namespace name of the lab.
	ID  string
	Dir string
	// Kubeconfig is an admin kubeconfig for use on this machine (through a
	// loopback port forwarded into the lab); LabKubeconfig is the same
	// inside the lab's namespaces (what nodes and the mesh use).
	Kubeconfig, LabKubeconfig string
	// Config reaches the API server through the control-plane namespace.
	Config   *rest.Config
	Client   kubernetes.Interface
	Binaries *controlplane.Binaries
	Nodes    []Node
	// Network is the lab's network (namespaces, Pods).
	Network *network.Network

	opts     Options
	helm     string // the helm binary
	chartDir string // charts/nodemesh of the repository
	log      *slog.Logger
	cluster  *controlplane.Cluster
	fwd      *forwarder
	bpffs    string // the lab's bpf filesystem ("" until mounted)
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	failed   []error
	// cgroupMount is where the cgroup v2 hierarchy is mounted here (""
	// without one).
	cgroupMount string
}

// Start brings a lab up and returns once the API server serves, every
// node is Ready with kube-proxy synced, the cluster DNS answers and (unless
// NoMesh) every node's proxy has its configuration. On error everything
// started so far is removed.
func Start(ctx context.Context, o Options) (_ *Lab, err error) {
	if o.Dir == "" || o.Binaries == nil || o.BinDir == "" {
		return nil, errors.New("starting the lab: Dir, Binaries and BinDir are required")
	}
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.AddressPool == "" {
		o.AddressPool = DefaultAddressPool
	}
	if o.LoadBalancerPool == "" {
		o.LoadBalancerPool = DefaultLoadBalancerPool
	}
	lbPool, err := netip.ParsePrefix(o.LoadBalancerPool)
	if err != nil {
		return nil, fmt.Errorf("parsing the load-balancer pool: %w", err)
	}
	if o.GatewayChannel == "" {
		o.GatewayChannel = "standard"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bins := []string{"nodemesh-lab"}
	if !o.NoMesh {
		bins = append(bins, "nodemesh-agent", "nodemesh-proxy", "nodemesh-controller")
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("starting the lab: %s is not in %s (run `make build`)", b, o.BinDir)
		}
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, err
	}
	if err := CheckDir(o.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.Dir, err)
	}
	// Leftovers of labs (and test beds) whose process was killed.
	if err := testbed.Sweep(); err != nil {
		o.Log.Warn("removing leftovers of killed runs", "err", err)
	}
	if err := sweepPodCgroups(); err != nil {
		o.Log.Warn("removing Pod cgroups of killed runs", "err", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l := &Lab{Dir: o.Dir, Binaries: o.Binaries, opts: o, log: o.Log, cancel: cancel, helm: o.Helm}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if !o.NoMesh {
		// The mesh is what the chart renders: find it and helm first.
		root, err := chart.RepoRoot()
		if err != nil {
			return nil, err
		}
		l.chartDir = filepath.Join(root, chart.Dir)
		if l.helm == "" {
			if l.helm, err = chart.Helm(ctx, root); err != nil {
				return nil, err
			}
		}
	}
	resolv := []byte(fmt.Sprintf("search svc.%s %s\nnameserver %s\noptions ndots:5\n", ClusterDomain, ClusterDomain, DNSServiceIP))
	if l.Network, err = network.Create(network.Config{Nodes: o.Nodes, ResolvConf: resolv}); err != nil {
		return nil, err
	}
	l.ID = l.Network.ID
	cp := l.Network.ControlPlane
	if !o.NoMesh && !o.NoPolicy {
		if err := l.mountBPFFS(); err != nil {
			return nil, err
		}
	}
	for _, n := range l.Network.Nodes {
		ln := Node{
			Name: n.Name, IP: n.IP, PodCIDR: n.PodCIDR, Netns: n.Namespace.Name, NetnsPath: n.Path,
			StateDir: filepath.Join(o.Dir, "nodes", n.Name),
		}
		if l.bpffs != "" {
			// The chart pins under <agent.datapath.bpffsPath>/nodemesh.
			ln.PinDir = filepath.Join(l.bpffs, n.Name, "nodemesh")
		}
		l.Nodes = append(l.Nodes, ln)
	}
	if err := l.createPodCgroups(); err != nil {
		return nil, err
	}

	l.log.Info("starting etcd, kube-apiserver and kube-controller-manager", "netns", cp.Name)
	l.cluster, err = controlplane.Start(ctx, controlplane.Options{
		Binaries: o.Binaries, Dir: filepath.Join(o.Dir, "cluster"), ControllerManager: true, KubernetesEndpoints: true, RBAC: true,
		Host: network.ControlPlaneIP.String(), Dial: cp.Dial,
		Command: func(name string, args ...string) *exec.Cmd { return cp.Command(context.Background(), name, args...) },
	})
	if err != nil {
		return nil, err
	}
	l.Config, l.LabKubeconfig = l.cluster.Config, l.cluster.Kubeconfig
	if l.Client, err = kubernetes.NewForConfig(l.Config); err != nil {
		return nil, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	if err := l.forward(); err != nil {
		return nil, err
	}

	crds, err := o.Binaries.GatewayCRDs(o.GatewayChannel)
	if err != nil {
		return nil, err
	}
	if err := controlplane.Apply(ctx, l.Config, crds); err != nil {
		return nil, fmt.Errorf("installing Gateway API CRDs: %w", err)
	}
	if err := controlplane.Apply(ctx, l.Config, api.CRDManifests()); err != nil {
		return nil, fmt.Errorf("installing nodemesh CRDs: %w", err)
	}

	dnsServer, err := l.startDNS(ctx, runCtx)
	if err != nil {
		return nil, err
	}
	lb, err := lbipam.New(l.Client, lbPool, l.log.With("component", "lbipam"))
	if err != nil {
		return nil, err
	}
	l.goRun("load balancer", func() error { return lb.Run(runCtx) })
	l.goRun("scheduler", func() error {
		return scheduler.New(l.Client, l.log.With("component", "scheduler")).Run(runCtx)
	})
	images := []node.Image{{Repository: "registry.k8s.io/gateway-api/echo-basic", Program: o.Binaries.EchoBasic}}
	for _, im := range workload.Images {
		lab := filepath.Join(o.BinDir, "nodemesh-lab")
		var cmds map[string][]string
		for name, args := range im.Commands {
			if cmds == nil {
				cmds = map[string][]string{}
			}
			cmds[name] = append([]string{lab, "workload"}, args...)
		}
		images = append(images, node.Image{Repository: im.Repository, Program: lab,
			Args: append([]string{"workload"}, im.Args()...), Commands: cmds})
	}
	images = append(images, o.Images...) // later entries win
	for i, n := range l.Network.Nodes {
		r, err := node.New(node.Config{
			Client: l.Client, Node: n, Images: images, LocalCommands: true, DNS: DNSServiceIP, ClusterDomain: ClusterDomain,
			Env: []string{"SPIFFE_ENDPOINT_SOCKET=unix://" + WorkloadSocket(l.Nodes[i])},
			Dir: filepath.Join(o.Dir, "pods", n.Name), Log: l.log.With("node", n.Name), Cgroup: l.cgroupDir(l.Nodes[i]),
			KubeletClientCA: l.cluster.CAFile,
		})
		if err != nil {
			return nil, err
		}
		l.goRun("node "+n.Name, func() error { return r.Run(runCtx) })
		if err := l.startKubeProxy(l.Nodes[i], n); err != nil {
			return nil, err
		}
	}
	if !o.NoMesh {
		if err := l.startMesh(ctx, runCtx); err != nil {
			return nil, err
		}
	}
	if err := l.waitReady(ctx, dnsServer); err != nil {
		return nil, err
	}
	if err := l.writeState(); err != nil {
		return nil, err
	}
	return l, nil
}

// goRun runs fn until the lab closes; an early error is kept for Err.
func (l *Lab) goRun(what string, fn func() error) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := fn(); err != nil {
			l.log.Error("lab component stopped", "component", what, "err", err)
			l.mu.Lock()
			l.failed = append(l.failed, fmt.Errorf("%s: %w", what, err))
			l.mu.Unlock()
		}
	}()
}

// Err reports components that stopped with an error.
func (l *Lab) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.failed...)
}

// LogDir holds every process's output (<name>.log).
func (l *Lab) LogDir() string { return filepath.Join(l.Dir, "cluster", "logs") }

// Close stops everything: Pods (their processes), the node runners, the
// nodemesh and Kubernetes processes, and removes every namespace of the
// lab (killing whatever still runs in them). Safe on a partly started lab
// and to call twice.
func (l *Lab) Close() error {
	if l.cancel != nil {
		l.cancel()
	}
	if l.fwd != nil {
		l.fwd.close()
	}
	l.wg.Wait()
	if l.cluster != nil {
		l.cluster.Stop()
	}
	var err error
	if l.Network != nil {
		err = l.Network.Close()
	}
	// After the namespaces: closing them killed what still ran in them,
	// and with their interfaces gone nothing is attached any more, so
	// unmounting frees the pinned maps.
	err = errors.Join(err, l.removePodCgroups(), l.unmountBPFFS())
	_ = os.Remove(filepath.Join(l.Dir, stateFile))
	return err
}

// waitReady waits for the DNS, the nodes, kube-proxy on every node, the
// mesh on every node and the default ServiceAccount (Pods are refused
// without it).
func (l *Lab) waitReady(ctx context.Context, d *dns.Server) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	select {
	case <-d.Ready():
	case <-ctx.Done():
		return fmt.Errorf("waiting for the cluster DNS: %w", ctx.Err())
	}
	for i, n := range l.Network.Nodes {
		if err := l.waitNode(ctx, n.Name); err != nil {
			return err
		}
		if err := waitHTTP(ctx, n.Dial, "http://127.0.0.1:"+strconv.Itoa(kubeProxyHealthPort)+"/healthz", l.LogDir()+"/kube-proxy-"+n.Name+".log"); err != nil {
			return fmt.Errorf("waiting for kube-proxy on %s: %w", n.Name, err)
		}
		if !l.opts.NoMesh {
			if err := l.waitMesh(ctx, l.Nodes[i].Name); err != nil {
				return err
			}
		}
	}
	return l.waitServiceAccount(ctx)
}

// WorkloadSocket is where the node's agent serves the SPIFFE Workload API
// when it runs mutual authentication (its default, under the node's state
// directory); every Pod of the node gets it as SPIFFE_ENDPOINT_SOCKET, the
// variable go-spiffe reads.
func WorkloadSocket(n Node) string { return filepath.Join(n.StateDir, "workload.sock") }
