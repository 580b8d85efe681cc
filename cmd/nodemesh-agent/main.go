// Command nodemesh-agent is the per-node control plane: it reads user
// intent (in standalone mode, a directory of Kubernetes YAML; in Kubernetes
// mode, the API server), translates it and serves the result over xDS to
// the node's proxy. In Kubernetes mode it also reports what the node's
// proxies acknowledged in the node's NodeProxyStatus, and takes Gateway
// addresses from Gateway status, where nodemesh-controller assigns them.
//
// With --policy the agent also compiles network policy (CiliumNetworkPolicy,
// CiliumClusterwideNetworkPolicy, NetworkPolicy), serves the proxy's L7
// policy listeners and keeps L7 flows (nodemesh flows); with --datapath it
// loads the eBPF datapath and keeps its endpoints, ipcache and policy rows in
// sync (implies --policy), and the Service table (ClusterIPs and their ready
// backends); --datapath-cgroup attaches socket-level Service translation to
// the cgroup of the node's Pods. With --datapath it also records the
// datapath's drops and redirects as L3/L4 flows. With --policy the flows are
// also served as Hubble's Observer API (mesh/flow/observer) on hubble.sock in
// --state-dir (--hubble-socket) and, when --hubble-listen-address is set, on
// that TCP address without TLS, so `hubble observe --server unix://…` works
// against the node. Without them the agent behaves exactly as before.
// With --kubernetes the policy kinds, Pods and Nodes come from the API
// server (every Pod of the cluster, so ingress policy judges clients on
// other nodes by identity); the agent refuses to start when the API server
// cannot serve them (CRDs not installed, no permission) rather than
// enforce nothing, and writes each cilium.io policy's Valid condition.
// In Kubernetes mode workload identities are numbered cluster-wide as
// CiliumIdentity objects (mesh/provider/kube/ciliumidentity), so every node
// gives a Pod the same number; nodemesh-controller collects unused ones.
//
// With --mutual-auth (builtin or spire; needs --datapath) policy rules with
// authentication.mode required are enforced: the agent authenticates every
// relation they allow eagerly, with a TLS 1.3 handshake between the nodes'
// agents on --auth-port (4250), and writes the proof to the datapath's auth
// map; `nodemesh auth list` shows the entries and counters, `nodemesh flows`
// the auth-required drops. Pods reach the SPIFFE Workload API on
// <state-dir>/workload.sock (--auth-workload-socket).
//
// In standalone mode --config-max-file-size (default 4Mi) and
// --config-max-files (default 10000) bound what is read from --config-dir;
// files and directories over them are reported in `nodemesh status` and the
// last good configuration stays in effect (see mesh/provider/file).
//
// With --gateway-host-network (the controller's flag of the same name)
// Gateways are served on this node's own address, at each listener's
// port, when the controller lists that address in the Gateway's
// status.addresses (kube.HostNetworkAddresses); no LoadBalancer address
// is involved. --ingress-host-network (the controller's flag of the same
// name, independent of the Gateways' one) does the same for Ingresses: a
// shared Ingress on --ingress-host-network-shared-port, a dedicated one on
// its ingress.cilium.io/host-listener-port, when the controller lists this
// node's address in the Ingress's status.loadBalancer.
//
// With --gateway-address-routes every Gateway and Ingress address the node
// serves is made local to the node (datapath/localroute), so traffic a load
// balancer sends to a Gateway's LoadBalancer address reaches the node proxy
// listening on it, with the client's source address.
//
// Prometheus metrics (translations, xDS pushes/ACKs/NACKs and served
// versions, L7 verdicts, Hubble flow counts, and with --datapath the
// datapath's drops by reason and forwards; internal/metrics lists them)
// are served on http://127.0.0.1:9962/metrics (--metrics-address; empty
// disables them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/localroute"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/gateway/address"
	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/metrics"
	"github.com/nodemesh/nodemesh/internal/systemca"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/flow/observer"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/mesh/provider/file"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
	"github.com/nodemesh/nodemesh/xds/accesslog"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nodemesh-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	configDir := flag.String("config-dir", "", "standalone mode: directory of Kubernetes YAML to watch")
	kubeMode := flag.Bool("kubernetes", false, "Kubernetes mode: watch the API server instead of a directory")
	kubeconfig := flag.String("kubeconfig", "", "Kubernetes mode: kubeconfig file (default: $KUBECONFIG, else in-cluster)")
	nodeName := flag.String("node-name", "", "Kubernetes mode: this node's name (default: $NODE_NAME, else the host name)")
	stateDir := flag.String("state-dir", "/var/run/nodemesh", "directory for the xDS socket (xds.sock) and the local API socket (agent.sock)")
	xdsTCP := flag.String("xds-tcp-address", "", "also serve xDS on this TCP address (e.g. 127.0.0.1:15010)")
	pool := flag.String("address-pool", address.DefaultPool.String(), "prefix Gateway addresses are assigned from")
	controller := flag.String("controller-name", "nodemesh.io/gateway-controller", "GatewayClass controllerName this agent programs")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	hubbleSock := flag.String("hubble-socket", "", "with --policy: serve Hubble's Observer API (hubble observe) on this Unix socket (default: hubble.sock in --state-dir)")
	cecAddr := flag.String("envoy-config-address", "", "CiliumEnvoyConfig listeners without an address bind this node address, and the Services they take over are sent there (default: the first IPv4 address of --node-ips)")
	hubbleTCP := flag.String("hubble-listen-address", "", "with --policy: also serve Hubble's Observer API, without TLS, on this TCP address (e.g. 127.0.0.1:4244)")
	addrRoutes := flag.Bool("gateway-address-routes", false, "make every Gateway and Ingress address this node serves local to it (a local route on lo, "+
		"IPv4), so traffic for a load-balancer address that reaches the node is accepted by its proxy; needs CAP_NET_ADMIN")
	hostNet := flag.Bool("gateway-host-network", false, "Kubernetes mode: serve Gateways in host-network mode, on this node's own address at each listener's port "+
		"when nodemesh-controller (--gateway-host-network) lists it in the Gateway's status.addresses; must match the controller's flag")
	metricsAddr := flag.String("metrics-address", defaultMetricsAddress, "serve Prometheus metrics on http://<address>/metrics; empty disables them")
	pf := policyFlags()
	sf := standaloneFlags()
	var ingress gateway.IngressOptions
	ingress.RegisterFlags(flag.CommandLine)
	af := authFlags()
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("parsing --log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	switch {
	case *configDir == "" && !*kubeMode:
		return errors.New("either --config-dir (standalone mode) or --kubernetes is required")
	case *configDir != "" && *kubeMode:
		return errors.New("--config-dir and --kubernetes are mutually exclusive")
	}
	prefix, err := netip.ParsePrefix(*pool)
	if err != nil {
		return fmt.Errorf("parsing --address-pool: %w", err)
	}
	var prov *file.Provider
	if *configDir != "" {
		if prov, err = sf.provider(*configDir, log); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv := server.New(server.WithLogger(log))
	defer srv.Stop(5 * time.Second)
	xdsSock := filepath.Join(*stateDir, "xds.sock")
	l, err := server.ListenUnix(xdsSock)
	if err != nil {
		return err
	}

	// Bound before anything starts, so a taken port fails the start.
	ml, err := metrics.Listen(*metricsAddr, metrics.FlagIsDefault(flag.CommandLine, "metrics-address"), log)
	if err != nil {
		return err
	}
	msrc := &metricSources{xds: srv, log: log}
	reg, observeApply := newAgentMetrics(msrc)

	systemCAs, from, caErr := systemca.Load()
	if caErr != nil {
		log.Warn("BackendTLSPolicies trusting the system CAs will not be accepted", "err", caErr)
	} else {
		log.Info("system CA bundle read", "file", from)
	}
	cfg := agent.Config{
		SystemCAs:      systemCAs,
		Publisher:      publish.New(srv),
		ControllerName: gwv1.GatewayController(*controller),
		AddressPool:    prefix,
		Ingress:        ingress,
		Logger:         log,
		Applied: func(took time.Duration, err error) {
			observeApply(took.Seconds(), err != nil)
		},
	}
	policyNode := *nodeName
	if *kubeMode && policyNode == "" {
		// As in Kubernetes mode below: only this node's Pods are local.
		if policyNode = os.Getenv("NODE_NAME"); policyNode == "" {
			policyNode, _ = os.Hostname()
		}
	}
	if *kubeMode {
		// The Node whose ingress address Gateway upstreams leave from.
		cfg.NodeName = policyNode
	}
	var ids identity.Allocator // nil: the agent-local allocator
	if *kubeMode && (*pf.policy || *pf.datapath) {
		if ids, err = clusterIdentities(ctx, *kubeconfig, log); err != nil {
			return err
		}
	}
	pf.authentication = *af.source != ""
	cleanup, err := pf.setup(&cfg, srv, xdsSock, policyNode, ids, log)
	if err != nil {
		return err
	}
	defer cleanup()
	authn, err := af.setup(&cfg, *stateDir, policyNode, log)
	if err != nil {
		return err
	}
	pf.recordEvents(cfg.Flows, authn, log)
	cfg.EnvoyConfig = &agent.EnvoyConfigOptions{NodeName: policyNode, OriginalSourceMark: pf.originalSourceMark(), UpstreamMark: pf.routeMark()}
	if *cecAddr != "" {
		if cfg.EnvoyConfig.ListenAddress, err = netip.ParseAddr(*cecAddr); err != nil {
			return fmt.Errorf("parsing --envoy-config-address: %w", err)
		}
	} else {
		for _, ip := range cfg.HostIPs {
			if ip.Is4() && !ip.IsLoopback() {
				cfg.EnvoyConfig.ListenAddress = ip
				break
			}
		}
	}
	// Serve only now: gRPC refuses services registered after Serve, and
	// the policy setup above registers the access-log service.
	errc := make(chan error, 8)
	go func() { errc <- srv.Serve(l) }()
	if *xdsTCP != "" {
		tl, err := server.ListenTCP(*xdsTCP)
		if err != nil {
			return err
		}
		go func() { errc <- srv.Serve(tl) }()
	}
	if *kubeMode {
		// Gateways and Ingresses each follow their own mode.
		split := kube.SplitAddresses{Gateways: kube.StatusAddresses{}, Ingresses: kube.StatusAddresses{}}
		if *hostNet {
			split.Gateways = kube.HostNetworkAddresses{Local: kube.InterfaceAddresses}
			cfg.HostNetwork = true
		}
		if ingress.HostNetwork {
			split.Ingresses = kube.HostNetworkAddresses{Local: kube.InterfaceAddresses}
		}
		cfg.Addresses = split
	} else if *hostNet || ingress.HostNetwork {
		return errors.New("--gateway-host-network and --ingress-host-network need --kubernetes (nodemesh-controller selects the nodes)")
	}
	if *addrRoutes {
		routes, err := localroute.New()
		if err != nil {
			return fmt.Errorf("--gateway-address-routes: %w", err)
		}
		defer routes.Close()
		cfg.LocalRoutes = routes
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if authn != nil {
		if err := authn.start(ctx, a, errc); err != nil {
			return err
		}
	}
	apiSock := filepath.Join(*stateDir, "agent.sock")
	go func() { errc <- a.ServeAPI(ctx, apiSock) }()
	if cfg.Flows != nil {
		if *hubbleSock == "" {
			*hubbleSock = filepath.Join(*stateDir, "hubble.sock")
		}
		if msrc.observer, err = serveHubble(ctx, cfg.Flows, policyNode, *hubbleSock, *hubbleTCP, log, errc); err != nil {
			return err
		}
	} else if *hubbleSock != "" || *hubbleTCP != "" {
		return errors.New("--hubble-socket and --hubble-listen-address need --policy (the flows come from the policy listeners)")
	}

	msrc.flows, msrc.auth = cfg.Flows, authn
	if pf.dp != nil {
		msrc.datapath = pf.dp
	}
	msrc.als = pf.als
	if ml != nil {
		go func() { errc <- metrics.Serve(ctx, ml, reg, log) }()
		log.Info("serving metrics", "address", ml.Addr().String())
	}

	if *kubeMode {
		if err := runKubernetes(ctx, log, a, *kubeconfig, *nodeName, gwv1.GatewayController(*controller), *pf.policy || *pf.datapath, errc); err != nil {
			return err
		}
		log.Info("nodemesh-agent started in Kubernetes mode", "xds", xdsSock, "api", apiSock)
	} else {
		log.Info("nodemesh-agent started", "configDir", *configDir, "xds", xdsSock, "api", apiSock, "addressPool", prefix)
		go func() { errc <- feed(ctx, a, prov) }()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-errc:
		if err != nil {
			return err
		}
		return nil
	}
}

// policyOptions are the network policy and datapath flags.
type policyOptions struct {
	policy, datapath     *bool
	pinDir, netns        *string
	cgroup               *string
	enforcement          *string
	devices              *string
	hostIPs              *string
	listenAddress        *string
	ingressHTTP, egrHTTP *uint
	ingressKafka, egrKaf *uint
	labels, clusterName  *string
	flowLog              *string
	flowCapacity         *int
	originalSource       *bool
	proxyIdentity        *bool
	// authentication: mutual authentication runs (--mutual-auth), so
	// the compiler leaves its readiness to the agent.
	authentication bool
	// events is the datapath's event reader setup opened (nil without
	// --datapath); recordEvents reads it.
	events agent.EventSource
	// dp is the datapath setup loaded (nil without --datapath), for its
	// counters.
	dp *datapath.Datapath
	// als is the access-log service the proxies report to (nil without
	// --policy).
	als *accesslog.Service
}

// recordEvents reads the datapath's events into the flow store on a
// goroutine of its own; with mutual authentication, auth-required events
// also go to the auth manager (agent.RequestAuth). The ring buffer gets
// exactly one reader: two would split its records between them.
func (o *policyOptions) recordEvents(store *flow.Store, authn *authRuntime, log *slog.Logger) {
	if o.events == nil {
		return
	}
	src := o.events
	if authn != nil {
		src = agent.RequestAuth(src, authn.mgr.Request)
	}
	go func() {
		if err := agent.RecordEvents(src, store, log); !errors.Is(err, datapath.ErrClosed) {
			log.Error("datapath events stopped; L3/L4 flows are no longer recorded", "error", err)
		}
	}()
}

func policyFlags() *policyOptions {
	return &policyOptions{
		policy:   flag.Bool("policy", false, "compile network policy and serve the proxy's L7 policy listeners and flows"),
		datapath: flag.Bool("datapath", false, "load the eBPF datapath and sync endpoints, ipcache and policy to it (implies --policy; needs root)"),
		pinDir:   flag.String("datapath-pin-dir", datapath.DefaultPinDir, "bpffs directory of the datapath's pinned maps and links"),
		proxyIdentity: flag.Bool("proxy-datapath-identity", true, "with --datapath, the proxy's policy listeners read each redirected connection's source identity "+
			"from the datapath's pinned connection tracking (nodemesh-proxy; it needs the bpffs mount and CAP_BPF), so Gateway traffic from the node's own "+
			"address is judged as ingress; false for a proxy that judges peers by address only (Envoy): the datapath then refuses such traffic "+
			"where a backend's L7 rules would judge it"),
		netns: flag.String("datapath-netns", "", "network namespace (path) whose interfaces the datapath manages (default: the agent's)"),
		cgroup: flag.String("datapath-cgroup", "", "cgroup v2 of this node's Pods as a path in the hierarchy (as /proc/PID/cgroup shows it, e.g. /kubepods); "+
			"the datapath translates their connects to Service ClusterIPs into backend Pods there, so egress policy and L7 redirect see the real destination "+
			"(the hierarchy is mounted at "+datapath.DefaultCgroupMount+" when this mount namespace has none)"),
		enforcement:   flag.String("policy-enforcement", "default", "policy enforcement mode: default, always or never"),
		devices:       flag.String("datapath-devices", "", "comma-separated uplink devices that carry traffic from outside the node"),
		hostIPs:       flag.String("node-ips", "", "comma-separated addresses of this node (identity host); default: the addresses of its interfaces"),
		listenAddress: flag.String("policy-listen-address", "0.0.0.0", "address the proxy's policy listeners bind"),
		ingressHTTP:   flag.Uint("policy-port-ingress-http", 15101, "port of the ingress HTTP policy listener"),
		egrHTTP:       flag.Uint("policy-port-egress-http", 15102, "port of the egress HTTP policy listener"),
		ingressKafka:  flag.Uint("policy-port-ingress-kafka", 15103, "port of the ingress Kafka policy listener"),
		egrKaf:        flag.Uint("policy-port-egress-kafka", 15104, "port of the egress Kafka policy listener"),
		labels:        flag.String("labels", "", "identity-relevant label patterns, space-separated, appended to Cilium's defaults (e.g. \"k8s:app !team\")"),
		clusterName:   flag.String("cluster-name", "default", "cluster name (the cluster entity, io.cilium.k8s.policy.cluster)"),
		flowLog:       flag.String("flow-log", "", "also write every L7 flow as a JSON line to this file (\"-\": standard output)"),
		flowCapacity:  flag.Int("flow-capacity", flow.DefaultCapacity, "how many recent flows the agent keeps for nodemesh flows"),
		originalSource: flag.Bool("policy-original-source", true, "with --datapath: the proxy connects upstream from the client's address, so the datapath "+
			"judges the proxied connection as the client (otherwise as the node); also for GAMMA route, CiliumEnvoyConfig and lb-l7 listeners "+
			"(unless the config's cec.cilium.io/use-original-source-address says \"false\")"),
	}
}

// originalSourceMark is the mark of the original-source connections of
// the proxy's routing listeners (GAMMA, CiliumEnvoyConfig, lb-l7) when the
// datapath steers their replies back to the proxy (--datapath and
// --policy-original-source), else zero. It is the routing listeners' mark,
// not the policy listeners': these listeners applied no L7 ingress policy,
// so the datapath still hands their connections to the destination's
// ingress policy listener.
func (o *policyOptions) originalSourceMark() uint32 {
	if !*o.datapath || !*o.originalSource {
		return 0
	}
	mark, _ := datapath.ProxyRouteMark(0)
	return mark
}

// routeMark is the mark of every upstream connection of the proxy's
// CiliumEnvoyConfig and lb-l7 clusters where the datapath runs, else zero.
func (o *policyOptions) routeMark() uint32 {
	if !*o.datapath {
		return 0
	}
	mark, _ := datapath.ProxyRouteMark(0)
	return mark
}

// gatewayUpstreamMark is the mark of the proxy's connections to Gateway
// and Ingress backends: the reserved ingress identity, with the routing
// listeners' magic (those listeners apply no L7 ingress policy of the
// backend).
func gatewayUpstreamMark() (uint32, error) {
	return datapath.ProxyRouteMark(model.IdentityIngress)
}

// setup wires policy compilation, the access log service, the flow store
// and the datapath into the agent's configuration. It changes nothing
// unless --policy or --datapath is given. The returned function releases
// what setup opened (the datapath keeps running: its programs and maps
// stay pinned across agent restarts).
func (o *policyOptions) setup(cfg *agent.Config, srv *server.Server, xdsSock, nodeName string, ids identity.Allocator, log *slog.Logger) (func(), error) {
	if !*o.policy && !*o.datapath {
		return func() {}, nil
	}
	var closers []func()
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	filter, err := identity.NewFilter(strings.Fields(*o.labels))
	if err != nil {
		return nil, fmt.Errorf("parsing --labels: %w", err)
	}
	hostIPs, err := parseHostIPs(*o.hostIPs)
	if err != nil {
		return nil, err
	}
	mark, _ := datapath.ProxyMark(0)
	ports := []*uint{o.ingressHTTP, o.egrHTTP, o.ingressKafka, o.egrKaf}
	for _, p := range ports {
		if *p == 0 || *p > 65535 {
			return nil, fmt.Errorf("policy listener ports must be 1-65535, got %d", *p)
		}
	}
	idOpts := []identity.Option{identity.WithFilter(filter), identity.WithClusterName(*o.clusterName)}
	if ids != nil {
		idOpts = append(idOpts, identity.WithAllocator(ids))
	}
	listeners := policy.Listeners{Address: *o.listenAddress, IngressHTTP: uint16(*o.ingressHTTP), EgressHTTP: uint16(*o.egrHTTP),
		IngressKafka: uint16(*o.ingressKafka), EgressKafka: uint16(*o.egrKaf),
		// The proxy's upstream mark carries no identity, so without the
		// client's address the datapath would judge the connection as
		// the node's.
		OriginalSource: *o.datapath && *o.originalSource}
	if *o.datapath && *o.proxyIdentity {
		// Policy listeners read the identity each redirected connection
		// was judged with from the datapath's connection tracking.
		listeners.ConntrackMap = datapath.ConntrackPin(*o.pinDir)
	}
	compiler, err := policy.New(policy.Options{
		NodeName:        nodeName,
		ClusterName:     *o.clusterName,
		Identities:      identity.NewManager(idOpts...),
		Listeners:       listeners,
		UpstreamMark:    mark,
		AccessLogSocket: xdsSock,
		Authentication:  o.authentication,
		// Every agent's proxy serves the Gateway and Ingress listeners:
		// policies selecting reserved:ingress apply to it.
		IngressEndpoint: true,
	})
	if err != nil {
		return nil, err
	}
	storeOpts := []flow.Option{flow.WithCapacity(*o.flowCapacity), flow.WithLogger(log)}
	switch *o.flowLog {
	case "":
	case "-":
		storeOpts = append(storeOpts, flow.WithJSONLines(os.Stdout))
	default:
		f, err := os.OpenFile(*o.flowLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("opening --flow-log: %w", err)
		}
		closers = append(closers, func() { f.Close() })
		storeOpts = append(storeOpts, flow.WithJSONLines(f))
	}
	store := flow.NewStore(storeOpts...)
	o.als = accesslog.New(store, log)
	o.als.Register(srv)
	cfg.Policy, cfg.HostIPs, cfg.Flows = compiler, hostIPs, store

	if *o.datapath {
		mode, ok := map[string]datapath.EnforcementMode{"default": datapath.EnforceDefault, "always": datapath.EnforceAlways, "never": datapath.EnforceNever}[*o.enforcement]
		if !ok {
			cleanup()
			return nil, fmt.Errorf("--policy-enforcement: %q is not default, always or never", *o.enforcement)
		}
		opts := []datapath.Option{datapath.WithPinDir(*o.pinDir), datapath.WithLogger(log)}
		if *o.proxyIdentity {
			opts = append(opts, datapath.WithProxyIdentity())
		}
		if *o.netns != "" {
			opts = append(opts, datapath.WithNetNS(*o.netns))
		}
		dp, err := datapath.New(opts...)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("loading the datapath: %w", err)
		}
		closers = append(closers, func() { dp.Close() })
		o.dp = dp
		if err := dp.SetEnforcementMode(mode); err != nil {
			cleanup()
			return nil, err
		}
		ifs, err := datapath.NewRouteInterfaces(*o.netns)
		if err != nil {
			cleanup()
			return nil, err
		}
		closers = append(closers, ifs.Close)
		if *o.devices != "" {
			var idx []int
			for _, name := range strings.Split(*o.devices, ",") {
				ifc, err := net.InterfaceByName(strings.TrimSpace(name))
				if err != nil {
					cleanup()
					return nil, fmt.Errorf("--datapath-devices: %w", err)
				}
				idx = append(idx, ifc.Index)
			}
			if err := dp.SyncNetdevs(idx); err != nil {
				cleanup()
				return nil, err
			}
		}
		if *o.cgroup != "" {
			dir, err := datapath.ResolveCgroup(*o.cgroup)
			if err != nil {
				cleanup()
				return nil, fmt.Errorf("--datapath-cgroup: %w", err)
			}
			if err := dp.AttachCgroup(dir); err != nil {
				cleanup()
				return nil, fmt.Errorf("--datapath-cgroup: %w", err)
			}
		}
		// The Service table is written even without the socket hooks:
		// from_workload uses it to refuse judging a flow that is still
		// addressed to a ClusterIP under egress enforcement.
		cfg.Datapath, cfg.Interfaces, cfg.Services = dp, ifs, dp
		cfg.NoServiceHooks = *o.cgroup == ""
		events, err := dp.Events()
		if err != nil {
			cleanup()
			return nil, err
		}
		closers = append(closers, func() { events.Close() })
		// Read by recordEvents, once mutual authentication (which taps
		// this reader) is set up.
		o.events = events
		// Gateway traffic keeps its identity: the proxy's connections to a
		// Gateway's backends carry the reserved ingress identity in their
		// mark, as Cilium's do, so backend policy sees ingress, not host.
		// The routing listeners' mark: a backend's L7 ingress rules still
		// apply (the datapath hands the connection to the policy
		// listener).
		if cfg.GatewayUpstreamMark, err = gatewayUpstreamMark(); err != nil {
			cleanup()
			return nil, err
		}
		cfg.ProxyIdentity = *o.proxyIdentity
	}
	log.Info("network policy enabled", "datapath", *o.datapath, "hostIPs", hostIPs)
	return cleanup, nil
}

// serveHubble serves Hubble's Observer API from the flow store on a Unix
// socket and, when tcp is set, on that TCP address.
func serveHubble(ctx context.Context, store *flow.Store, node, sock, tcp string, log *slog.Logger, errc chan<- error) (*observer.Server, error) {
	ls := []net.Listener{}
	l, err := server.ListenUnix(sock)
	if err != nil {
		return nil, fmt.Errorf("--hubble-socket: %w", err)
	}
	ls = append(ls, l)
	if tcp != "" {
		tl, err := net.Listen("tcp", tcp)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("--hubble-listen-address: %w", err)
		}
		ls = append(ls, tl)
	}
	srv := observer.New(store, observer.WithNodeName(node), observer.WithLogger(log))
	go func() { errc <- srv.Serve(ctx, ls...) }()
	log.Info("serving Hubble's Observer API", "socket", sock, "tcp", tcp)
	return srv, nil
}

// parseHostIPs reads --node-ips, or takes the addresses of the node's
// interfaces.
func parseHostIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	if s != "" {
		for _, f := range strings.Split(s, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(f))
			if err != nil {
				return nil, fmt.Errorf("parsing --node-ips: %w", err)
			}
			out = append(out, a)
		}
		return out, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing the node's addresses: %w", err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}
