package proxylib

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
	"github.com/nodemesh/nodemesh/proxylib/admin"
	"github.com/nodemesh/nodemesh/proxylib/config"
	"github.com/nodemesh/nodemesh/proxylib/evloop"
	"github.com/nodemesh/nodemesh/proxylib/hcm"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/udpproxy"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
	"github.com/nodemesh/nodemesh/proxylib/xdsclient"
)

// Proxy is the builtin node proxy: xDS client, configuration store,
// listeners and data path.
type Proxy struct {
	o      options
	rt     *hcm.Runtime
	um     *upstream.Manager
	lm     *listener.Manager
	udp    *udpproxy.Manager
	store  *config.Store
	client *xdsclient.Client
	pool   *pool // worker processes; nil in a single process and in a worker
}

type options struct {
	xdsAddress   string
	nodeID       string
	delta        bool
	adminAddress string
	logger       *slog.Logger
	drainTimeout time.Duration
	fetchTimeout time.Duration
	localAddress string
	backoffMin   time.Duration
	backoffMax   time.Duration
	prometheus   func(*Proxy) http.Handler
	// Worker processes (workers.go).
	workers       int
	workerCommand func(index int) *exec.Cmd
	eventLoops    int
	workerMetrics func(p *Proxy, w io.Writer) error
}

// Option configures a Proxy.
type Option func(*options)

// WithXDSAddress sets the xDS server: "unix:///path/xds.sock" or
// "tcp://host:port".
func WithXDSAddress(a string) Option { return func(o *options) { o.xdsAddress = a } }

// WithNodeID sets the node id (default: the host name).
func WithNodeID(id string) Option { return func(o *options) { o.nodeID = id } }

// WithDelta selects the incremental xDS protocol.
func WithDelta(on bool) Option { return func(o *options) { o.delta = on } }

// WithAdminAddress serves the admin endpoint on addr ("" disables it).
func WithAdminAddress(addr string) Option { return func(o *options) { o.adminAddress = addr } }

// WithPrometheus serves the handler h(p) returns on the admin endpoint at
// /stats/prometheus, Envoy's path for its statistics in Prometheus' text
// format (the proxy's own metrics, which live with the binary).
func WithPrometheus(h func(*Proxy) http.Handler) Option { return func(o *options) { o.prometheus = h } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDrainTimeout bounds how long removed listeners, and all listeners at
// shutdown, drain (default 600 s as Envoy's --drain-time-s).
func WithDrainTimeout(d time.Duration) Option { return func(o *options) { o.drainTimeout = d } }

// WithInitialFetchTimeout bounds warming (default 15 s).
func WithInitialFetchTimeout(d time.Duration) Option {
	return func(o *options) { o.fetchTimeout = d }
}

// WithLocalAddress sets the address appended to x-forwarded-for for
// loopback peers (default: the first non-loopback address of the host).
func WithLocalAddress(a string) Option { return func(o *options) { o.localAddress = a } }

// WithReconnectBackoff sets the xDS reconnect backoff bounds.
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = min, max }
}

// WithEventLoops serves plain-TCP HTTP/1.1 connections on n event loops
// (package evloop; hcm doc.go, "Event loops") instead of a goroutine each.
// GOMAXPROCS must exceed n, or be 1 with n 1 (SetProcsForLoops): a busy
// loop keeps its P, a loop alone on GOMAXPROCS=1 shares it.
// 0 (the library's default): none; nodemesh-proxy runs DefaultEventLoops.
func WithEventLoops(n int) Option { return func(o *options) { o.eventLoops = n } }

// MaxEventLoops bounds WithEventLoops' count as nodemesh-proxy accepts it:
// one loop per core of the largest nodes.
const MaxEventLoops = 256

// DefaultEventLoops is the event loop count nodemesh-proxy runs unless told
// otherwise (loopBudget, from the runtime's GOMAXPROCS and CPU count and
// the cgroup's CPU limit: call it before SetProcsForLoops); none when
// the proxy runs worker processes (workers > 1), or when loops that keep
// their P cannot run in this process (evloop.Usable; a shared loop can).
func DefaultEventLoops(workers int) int {
	if workers > 1 {
		return 0
	}
	procs, limit := runtime.GOMAXPROCS(0), cgroupCPULimit()
	n := loopBudget(procs, runtime.NumCPU(), limit)
	if procsForLoops(n, procs, limit, procsSetByHand()) > 1 && evloop.Usable() != nil {
		return 0
	}
	return n
}

// SetProcsForLoops sets GOMAXPROCS for n loops (procsForLoops) and fixes
// it: the runtime no longer follows changes of a cgroup CPU limit, which
// could take Ps the loops count on.
func SetProcsForLoops(n int) {
	if n > 0 {
		runtime.GOMAXPROCS(procsForLoops(n, runtime.GOMAXPROCS(0), cgroupCPULimit(), procsSetByHand()))
	}
}

// procsSetByHand reports whether GOMAXPROCS is set in the environment as
// the runtime takes it: an integer above 0.
func procsSetByHand() bool {
	n, err := strconv.Atoi(os.Getenv("GOMAXPROCS"))
	return err == nil && n > 0
}

// procsForLoops is the GOMAXPROCS n > 0 loops run with, in a process the
// runtime gave procs Ps (byHand: GOMAXPROCS was set), under a CPU limit
// of limit CPUs (0: none). Where the budget is one CPU (procs 1, or a
// limit of at most one CPU, which the runtime rounds up to 2 Ps unless
// told otherwise) one loop shares the only P with the rest of the process
// (evloop's shared mode): a second P there would be a second thread on
// that CPU. Otherwise the loops keep a P each and the rest of the process
// has one more (on one CPU given 2 Ps by hand or by a limit between one
// and two: two Ps sharing it). A GOMAXPROCS set by hand is never lowered.
func procsForLoops(n, procs int, limit float64, byHand bool) int {
	if n == 1 && (procs == 1 || (!byHand && limit > 0 && limit <= 1)) {
		return 1
	}
	return max(procs, n+1)
}

// New builds a proxy; Run starts it.
func New(opts ...Option) (*Proxy, error) {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	if o.xdsAddress == "" {
		return nil, errors.New("configuring proxy: an xDS address is required")
	}
	if o.workers > 1 && o.workerCommand == nil {
		return nil, errors.New("configuring proxy: workers need a worker command")
	}
	if o.workers > 1 && o.eventLoops > 0 {
		return nil, errors.New("configuring proxy: event loops and workers exclude each other")
	}
	p, err := build(o)
	if err != nil {
		return nil, err
	}
	var h xdsclient.Handler = p.store
	if o.workers > 1 {
		p.pool = newPool(p, o.workers-1)
		h = p.pool
	}
	c, err := xdsclient.New(o.xdsAddress, p.o.nodeID, h, xdsclient.WithDelta(o.delta),
		xdsclient.WithLogger(o.logger), xdsclient.WithBackoff(o.backoffMin, o.backoffMax))
	if err != nil {
		if p.rt.Loops != nil {
			p.rt.Loops.Close() // Run never comes to close them
		}
		return nil, err
	}
	p.client = c
	return p, nil
}

func defaultOptions() options {
	return options{logger: slog.Default(), drainTimeout: 600 * time.Second, fetchTimeout: config.InitialFetchTimeout,
		backoffMin: 250 * time.Millisecond, backoffMax: 30 * time.Second}
}

// build makes everything of a proxy but its xDS client: what a worker
// process runs.
func build(o options) (*Proxy, error) {
	if o.nodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("determining node id: %w", err)
		}
		o.nodeID = h
	}
	if o.localAddress == "" {
		o.localAddress = hostAddress()
	}
	p := &Proxy{o: o}
	p.rt = hcm.NewRuntime(o.localAddress, o.logger)
	if o.eventLoops > 0 {
		ls, err := hcm.StartLoops(o.eventLoops)
		if err != nil {
			return nil, fmt.Errorf("starting event loops: %w", err)
		}
		p.rt.Loops = ls
		o.logger.Info("serving plain-TCP HTTP/1.1 on event loops", "loops", o.eventLoops, "gomaxprocs", runtime.GOMAXPROCS(0))
	}
	p.rt.ALS = accesslog.NewManager(o.nodeID, p.rt.Resolve, o.logger)
	p.um = upstream.NewManager(nil, upstream.WithSecrets(func(n string) *resource.Secret { return p.store.Secret(n) }))
	p.lm = listener.New(func(n string) *tls.Certificate { return p.store.Cert(n) },
		listener.WithDrainTimeout(o.drainTimeout), listener.WithLogger(o.logger),
		listener.WithValidations(func(n string) *resource.ValidationContext {
			if s := p.store.Secret(n); s != nil {
				return s.Validation
			}
			return nil
		}))
	p.udp = udpproxy.New(p.rt, udpproxy.WithLogger(o.logger))
	p.store = config.New(p.rt, p.lm, p.um, config.WithInitialFetchTimeout(o.fetchTimeout), config.WithLogger(o.logger),
		config.WithUDP(p.udp))
	return p, nil
}

// Store exposes the configuration state (status, readiness).
func (p *Proxy) Store() *config.Store { return p.store }

// Listeners returns listener name → bound address of serving listeners,
// TCP and UDP.
func (p *Proxy) Listeners() map[string]string {
	out := p.lm.Addresses()
	for n, a := range p.udp.Addresses() {
		out[n] = a
	}
	return out
}

// XDSStats returns the xDS stream counters.
func (p *Proxy) XDSStats() xdsclient.Stats {
	if p.client == nil { // a worker
		return xdsclient.Stats{}
	}
	return p.client.Stats()
}

// RequestStats returns the HTTP request counters of every listener
// (metrics read them at every scrape).
func (p *Proxy) RequestStats() *hcm.RequestStats { return p.rt.Requests }

// ClusterStats returns each cluster's circuit breaker and retry
// statistics, by cluster name (what the admin endpoint's /stats shows).
func (p *Proxy) ClusterStats() map[string]upstream.BreakerStats { return p.um.Stats() }

// Run serves until ctx ends, then stops accepting and drains connections
// for up to the drain timeout.
func (p *Proxy) Run(ctx context.Context) error {
	if p.rt.Loops != nil {
		defer p.rt.Loops.Close() // after every listener drained
	}
	var (
		adminSrv  *http.Server
		adminAddr string
	)
	if p.o.adminAddress != "" {
		ln, err := net.Listen("tcp", p.o.adminAddress)
		if err != nil {
			return fmt.Errorf("listening for admin on %s: %w", p.o.adminAddress, err)
		}
		var prom http.Handler
		if p.o.prometheus != nil {
			prom = p.o.prometheus(p)
		}
		var src admin.Source = p.store
		if p.pool != nil {
			src = poolSource{p.store, p.pool}
		}
		adminSrv = &http.Server{Handler: admin.Handler(src, p.client.Stats, p.Listeners, p.um.Stats, admin.WithPrometheus(prom)),
			ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = adminSrv.Serve(ln) }()
		adminAddr = ln.Addr().String()
		c, err := adminCluster(ln.Addr().(*net.TCPAddr))
		if err != nil {
			_ = adminSrv.Close()
			return err
		}
		p.store.SetStatic(c)
	}
	if p.pool == nil {
		// A loop that stops on its own takes the plain HTTP/1.1 it
		// serves with it: the proxy stops too, and says why.
		cctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		if p.rt.Loops != nil {
			go func() {
				select {
				case lerr := <-p.rt.Loops.Failed():
					p.o.logger.Error("an event loop stopped; shutting down", "error", lerr)
					cancel(lerr)
				case <-cctx.Done():
				}
			}()
		}
		err := p.client.Run(cctx)
		p.shutdown()
		if adminSrv != nil {
			_ = adminSrv.Close()
		}
		// A stop asked for (ctx) after a loop failed reports no error:
		// the failure was logged when it came.
		if ctx.Err() == nil && cctx.Err() != nil {
			err = errors.Join(err, fmt.Errorf("event loop: %w", context.Cause(cctx)))
		}
		return err
	}
	p.pool.start(adminAddr)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fatalc := make(chan error, 1)
	go func() {
		select {
		case err := <-p.pool.fatal:
			p.o.logger.Error("giving up on a worker; shutting down", "error", err)
			cancel()
			fatalc <- err
		case <-cctx.Done():
			fatalc <- nil
		}
	}()
	err := p.client.Run(cctx)
	cancel()
	fatal := <-fatalc
	// Every process drains at once: the workers on SIGTERM, this one here.
	done := make(chan struct{})
	go func() {
		defer close(done)
		dctx, dcancel := context.WithTimeout(context.Background(), p.o.drainTimeout+5*time.Second)
		defer dcancel()
		p.pool.stop(dctx)
	}()
	p.shutdown()
	<-done
	if adminSrv != nil {
		_ = adminSrv.Close()
	}
	return errors.Join(err, fatal)
}

// poolSource is what the admin endpoint reads with workers: the parent's
// configuration (every worker holds the same), ready only when every
// worker is.
type poolSource struct {
	*config.Store
	pool *pool
}

func (s poolSource) Ready() bool { return s.Store.Ready() && s.pool.ready() }

// adminCluster is the static cluster resource.AdminClusterName ("envoy-admin",
// the name Cilium's Envoy bootstrap gives its admin cluster): one endpoint,
// the admin endpoint's own address, so a route may expose what the admin
// endpoint serves (Cilium's example listener serves /stats/prometheus as
// /metrics). It is decoded like any cluster, so it gets every default a
// published one would.
func adminCluster(addr *net.TCPAddr) (*resource.Cluster, error) {
	c := &clusterv3.Cluster{
		Name:                 resource.AdminClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: resource.AdminClusterName, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: addr.IP.String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(addr.Port)}}}},
			}}}},
		}}},
	}
	a, err := anypb.New(c)
	if err != nil {
		return nil, fmt.Errorf("encoding the admin cluster: %w", err)
	}
	rc, err := resource.DecodeCluster(a)
	if err != nil {
		return nil, fmt.Errorf("building the admin cluster: %w", err)
	}
	return rc, nil
}

// hostAddress returns the first non-loopback unicast address of the host,
// the address Envoy reports as its own.
func hostAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
