// Command nodemesh-controller owns the cluster-wide side of Gateway API on
// Kubernetes: it accepts nodemesh GatewayClasses (listing the supported
// features), assigns Gateway addresses from a pool, and writes GatewayClass,
// Gateway, listener and HTTPRoute status, reporting a Gateway Programmed
// only once every node's proxies acknowledged it. It also deletes the
// CiliumIdentity objects no Pod has used for --identity-gc-grace
// (mesh/provider/kube/ciliumidentity); --labels and --cluster-name must be
// the agents'. One replica runs per cluster.
//
// With --spire-server-socket it also keeps the SPIRE server's registration
// entries for mutual authentication (agents with --mutual-auth=spire): for
// every Node, one entry per CiliumIdentity of a Pod bound to it, parented
// on the node's alias spiffe://<trust domain>/nodemesh/node/<name>, so a
// node's SPIRE agent hands nodemesh's agent exactly the identities it
// hosts (auth/spire describes the layout and what the SPIRE deployment
// provides). A Pod, Node or Namespace change syncs the nodes whose
// identities it changed; every node is reconciled every
// --spire-sync-interval; a node whose sync failed is retried on its own
// backoff (a Node deleted meanwhile still loses its entries). The
// identity collector and the registration share one core informer
// factory, so Pods and Namespaces are watched once.
//
// With --gateway-host-network Gateways get no Service: the node proxies
// of the nodes --gateway-host-network-nodes selects listen on their
// Node's InternalIP at each listener's port, and the Gateway's
// status.addresses lists those addresses (gateway/controller, hostnet.go).
// --ingress-host-network, a switch of its own, does the same for
// Ingresses on the nodes --ingress-host-network-nodes selects: no
// nodemesh-ingress* Service, and each served Ingress's
// status.loadBalancer lists those nodes' addresses.
//
// Prometheus metrics (reconciliations and their duration, leadership)
// are served on http://127.0.0.1:9963/metrics (--metrics-address; empty
// disables them) by every replica, leading or not.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/auth/spire"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/gateway/controller"
	"github.com/nodemesh/nodemesh/internal/metrics"
	"github.com/nodemesh/nodemesh/internal/systemca"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
	"github.com/nodemesh/nodemesh/mesh/provider/kube/ciliumidentity"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nodemesh-controller:", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else in-cluster)")
	pool := flag.String("address-pool", "", "prefix Gateway and Ingress addresses are assigned from with --gateway-services=false (required), e.g. 192.0.2.0/24")
	services := flag.Bool("gateway-services", true, "give each Gateway (nodemesh-gateway-<name>) and each Ingress load balancer (nodemesh-ingress-<name>, "+
		"shared: nodemesh-ingress) a Service of type LoadBalancer and take its address from the load balancer; false assigns addresses from --address-pool")
	sharedNS := flag.String("ingress-shared-service-namespace", cmp.Or(os.Getenv("POD_NAMESPACE"), "kube-system"), "namespace of the shared Ingress load balancer's Service (default: $POD_NAMESPACE, else kube-system)")
	hostNet := flag.Bool("gateway-host-network", false, "serve Gateways in host-network mode: no Service; the node proxies of the selected nodes "+
		"listen on their Node's InternalIP at each listener's port, listed in status.addresses (the agents need --gateway-host-network too)")
	hostNodes := flag.String("gateway-host-network-nodes", "", "with --gateway-host-network: label selector of the nodes that serve Gateways (e.g. role=edge); empty selects every node")
	ingressNodes := flag.String("ingress-host-network-nodes", "", "with --ingress-host-network: label selector of the nodes that serve Ingresses (e.g. role=edge); empty selects every node")
	controllerName := flag.String("controller-name", string(gateway.ControllerName), "GatewayClass controllerName this controller owns")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	labels := flag.String("labels", "", "identity-relevant label patterns, as given to the agents")
	clusterName := flag.String("cluster-name", "default", "cluster name, as given to the agents")
	gcInterval := flag.Duration("identity-gc-interval", ciliumidentity.DefaultInterval, "how often unused CiliumIdentities are looked for")
	gcGrace := flag.Duration("identity-gc-grace", ciliumidentity.DefaultGrace, "how long a CiliumIdentity must be unused before it is deleted")
	elect := flag.Bool("leader-elect", false, "run only while holding a coordination.k8s.io Lease, so several replicas can run")
	electNS := flag.String("leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease (default: $POD_NAMESPACE)")
	electID := flag.String("leader-election-id", "nodemesh-controller", "name of the Lease")
	var ingress gateway.IngressOptions
	ingress.RegisterFlags(flag.CommandLine) // the agents must be given the same values
	spireSocket := flag.String("spire-server-socket", "", "register, on the SPIRE server at this local API socket, one entry per identity "+
		"per node that hosts it (parent spiffe://<trust domain>/nodemesh/node/<node>), for agents running --mutual-auth=spire")
	trustDomain := flag.String("auth-trust-domain", "cluster.local", "SPIFFE trust domain, as given to the agents")
	metricsAddr := flag.String("metrics-address", defaultMetricsAddress, "serve Prometheus metrics on http://<address>/metrics; empty disables them")
	spireEvery := flag.Duration("spire-sync-interval", 10*time.Second, "how often every node's SPIRE entries are reconciled besides on changes")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("parsing --log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *pool == "" {
		return fmt.Errorf("--address-pool is required")
	}
	prefix, err := netip.ParsePrefix(*pool)
	if err != nil {
		return fmt.Errorf("parsing --address-pool: %w", err)
	}
	filter, err := identity.NewFilter(strings.Fields(*labels))
	if err != nil {
		return fmt.Errorf("parsing --labels: %w", err)
	}
	if *gcInterval <= 0 || *gcGrace < 0 {
		return fmt.Errorf("--identity-gc-interval must be positive and --identity-gc-grace not negative")
	}
	clients, err := kube.Connect(*kubeconfig)
	if err != nil {
		return err
	}
	m := newControllerMetrics()
	// Claim the experimental channel's features only where its CRDs
	// are installed; when the channel cannot be read, the standard set.
	channel, err := controller.InstalledChannel(context.Background(), clients.Dynamic)
	if err != nil {
		log.Warn("claiming the standard channel's features only", "err", err)
	}
	systemCAs, from, caErr := systemca.Load()
	if caErr != nil {
		log.Warn("BackendTLSPolicies trusting the system CAs will not be accepted", "err", caErr)
	} else {
		log.Info("system CA bundle read", "file", from)
	}
	copts := []controller.Option{controller.WithLogger(log), controller.WithControllerName(gwv1.GatewayController(*controllerName)),
		controller.WithIngress(ingress), controller.WithReconciled(m.reconciled),
		controller.WithSupportedFeatures(controller.FeaturesFor(channel, *services && !*hostNet)), controller.WithSystemCAs(systemCAs)}
	gwSel, err := nodeSelector("gateway-host-network", *hostNet, *hostNodes)
	if err != nil {
		return err
	}
	ingSel, err := nodeSelector("ingress-host-network", ingress.HostNetwork, *ingressNodes)
	if err != nil {
		return err
	}
	switch {
	case gwSel != nil:
		copts = append(copts, controller.WithHostNetwork(gwSel))
	case *services:
		copts = append(copts, controller.WithGatewayServices(), controller.WithSharedIngressNamespace(*sharedNS))
	}
	if ingSel != nil {
		copts = append(copts, controller.WithIngressHostNetwork(ingSel))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ml, err := metrics.Listen(*metricsAddr, metrics.FlagIsDefault(flag.CommandLine, "metrics-address"), log)
	if err != nil {
		return err
	}
	if ml != nil {
		// Served by every replica, leading or not: a standby's metrics
		// say it is one (nodemesh_controller_leader 0).
		go func() {
			if err := metrics.Serve(ctx, ml, m.reg, log); err != nil {
				log.Error("metrics endpoint stopped", "error", err)
			}
		}()
	}
	ids := identity.NewManager(identity.WithFilter(filter), identity.WithClusterName(*clusterName))
	// One factory of core informers: the Gateway controller's watch, the
	// collector and the SPIRE registration all watch Namespaces, the
	// latter two Pods as well.
	coreInformers := ciliumidentity.NewInformerFactory(clients.Core)
	copts = append(copts, controller.WithCoreInformers(coreInformers))
	c, err := controller.New(clients.Core, clients.Gateway, clients.Dynamic, prefix, copts...)
	if err != nil {
		return err
	}
	gc := ciliumidentity.NewCollector(clients.Core, clients.Dynamic, ids.PodLabels, ciliumidentity.WithLogger(log),
		ciliumidentity.WithInterval(*gcInterval), ciliumidentity.WithGrace(*gcGrace), ciliumidentity.WithInformerFactory(coreInformers))
	var reg *spireRegistration
	if *spireSocket != "" {
		td, err := spiffeid.TrustDomainFromString(*trustDomain)
		if err != nil {
			return fmt.Errorf("parsing --auth-trust-domain: %w", err)
		}
		if *spireEvery <= 0 {
			return fmt.Errorf("--spire-sync-interval must be positive")
		}
		conn, err := spire.DialServer(*spireSocket)
		if err != nil {
			return err
		}
		defer conn.Close()
		r, err := spire.NewRegistrar(conn, td, spire.WithLogger(log))
		if err != nil {
			return err
		}
		alloc := ciliumidentity.NewAllocator(clients.Dynamic, ciliumidentity.WithLogger(log))
		if err := alloc.Start(ctx); err != nil {
			return err
		}
		reg = newSPIRERegistration(coreInformers, r, td, alloc.Lookup, ids.PodLabels, *spireEvery, log)
	}
	log.Info("nodemesh-controller starting", "controllerName", *controllerName, "addressPool", prefix, "identityGCGrace", *gcGrace)
	// runAll runs the Gateway controller and the identity collector;
	// either one ending ends both.
	runAll := func(ctx context.Context) error {
		m.leader.Set(1)
		defer m.leader.Set(0)
		ctx, stop := context.WithCancel(ctx)
		defer stop()
		n := 2
		errc := make(chan error, 3)
		go func() { errc <- gc.Run(ctx) }()
		go func() { errc <- c.Run(ctx) }()
		if reg != nil {
			// SPIRE registration: only while leading, like the rest.
			n++
			coreInformers.Start(ctx.Done())
			coreInformers.WaitForCacheSync(ctx.Done())
			go func() { errc <- reg.Run(ctx) }()
		}
		err := <-errc
		stop()
		for i := 1; i < n; i++ {
			<-errc
		}
		return err
	}
	if !*elect {
		return runAll(ctx)
	}
	if *electNS == "" {
		return fmt.Errorf("--leader-elect needs --leader-election-namespace or $POD_NAMESPACE")
	}
	holder := os.Getenv("POD_NAME")
	if holder == "" {
		if holder, err = os.Hostname(); err != nil {
			return fmt.Errorf("reading host name for the leader election identity: %w", err)
		}
	}
	return runElected(ctx, clients.Core, *electNS, *electID, holder, log, runAll)
}

// nodeSelector parses --<mode>-nodes, the nodes serving in host-network
// mode --<mode>: nil when the mode is off (and then the selector must be
// empty: it would select nothing anyone asked for).
func nodeSelector(mode string, on bool, nodes string) (k8slabels.Selector, error) {
	if !on {
		if nodes != "" {
			return nil, fmt.Errorf("--%s-nodes needs --%s", mode, mode)
		}
		return nil, nil
	}
	sel, err := k8slabels.Parse(nodes)
	if err != nil {
		return nil, fmt.Errorf("parsing --%s-nodes: %w", mode, err)
	}
	return sel, nil
}
