package proxylib_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	rsrc "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/nodemesh/nodemesh/proxylib"
)

const nodeID = "test-node"

// xdsServer is a real go-control-plane ADS server on a Unix socket.
type xdsServer struct {
	t      testing.TB
	sock   string
	cache  cachev3.SnapshotCache
	gs     *grpc.Server
	ver    int
	mu     sync.Mutex
	nacks  []string
	acks   map[string]string // type → last ACKed version
	types  []string          // the types of the last snapshot set
	cancel context.CancelFunc
}

func startXDS(t testing.TB, sock string, cache cachev3.SnapshotCache) *xdsServer {
	t.Helper()
	if sock == "" {
		sock = filepath.Join(t.TempDir(), "xds.sock")
	}
	if cache == nil {
		cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	}
	x := &xdsServer{t: t, sock: sock, cache: cache, acks: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			x.note(r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce(), r.GetErrorDetail().GetMessage())
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			x.note(r.GetTypeUrl(), "delta", r.GetResponseNonce(), r.GetErrorDetail().GetMessage())
			return nil
		},
	}
	srv := serverv3.NewServer(ctx, cache, cb)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listening on xDS socket: %v", err)
	}
	x.gs = grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(x.gs, srv)
	go func() { _ = x.gs.Serve(ln) }()
	t.Cleanup(x.stop)
	return x
}

func (x *xdsServer) note(typeURL, version, nonce, nack string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if nack != "" {
		x.nacks = append(x.nacks, nack)
	} else if nonce != "" {
		x.acks[typeURL] = version
	}
}

func (x *xdsServer) stop() {
	x.gs.Stop()
	x.cancel()
}

func (x *xdsServer) nackMessages() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.nacks...)
}

// set publishes a snapshot built from resources.
func (x *xdsServer) set(res ...proto.Message) string {
	x.t.Helper()
	x.ver++
	m := map[rsrc.Type][]types.Resource{}
	for _, r := range res {
		var t rsrc.Type
		switch r.(type) {
		case *listenerv3.Listener:
			t = rsrc.ListenerType
		case *routev3.RouteConfiguration:
			t = rsrc.RouteType
		case *clusterv3.Cluster:
			t = rsrc.ClusterType
		case *endpointv3.ClusterLoadAssignment:
			t = rsrc.EndpointType
		case *tlsv3.Secret:
			t = rsrc.SecretType
		case *corev3.TypedExtensionConfig:
			t = rsrc.ExtensionConfigType
		default:
			x.t.Fatalf("unexpected resource %T", r)
		}
		m[t] = append(m[t], r)
	}
	v := fmt.Sprintf("v%d", x.ver)
	x.types = x.types[:0]
	for t := range m {
		x.types = append(x.types, t)
	}
	snap, err := cachev3.NewSnapshot(v, m)
	if err != nil {
		x.t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		x.t.Fatalf("inconsistent snapshot: %v", err)
	}
	if err := x.cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		x.t.Fatal(err)
	}
	return v
}

// waitACK waits until typeURL was ACKed at version.
func (x *xdsServer) waitACK(typeURL, version string) {
	x.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		x.mu.Lock()
		got := x.acks[typeURL]
		x.mu.Unlock()
		if got == version {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	x.t.Fatalf("%s not ACKed at %s (nacks: %v)", typeURL, version, x.nackMessages())
}

// waitApplied waits until the proxy ACKed every type of the last snapshot
// set at its version: its clusters have their endpoints then, so no route
// answers 503 for a cluster still warming.
func (x *xdsServer) waitApplied() {
	x.t.Helper()
	v := fmt.Sprintf("v%d", x.ver)
	for _, typ := range x.types {
		x.waitACK(typ, v)
	}
}

// Resource builders.

func anyOf(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion: corev3.ApiVersion_V3}
}

func sockAddr(hostport string) *corev3.Address {
	host, port, _ := net.SplitHostPort(hostport)
	var p uint32
	fmt.Sscan(port, &p)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}
}

func hcmFor(t testing.TB, routeName string, mod func(*hcmv3.HttpConnectionManager)) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix:     "ingress",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: routeName, ConfigSource: adsSource()}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
	}
	if mod != nil {
		mod(h)
	}
	return h
}

func chainFor(t testing.TB, h *hcmv3.HttpConnectionManager) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, h)}}}}
}

func httpListener(t testing.TB, name, addr, routeName string, mod func(*hcmv3.HttpConnectionManager)) *listenerv3.Listener {
	return &listenerv3.Listener{Name: name, Address: sockAddr(addr),
		FilterChains: []*listenerv3.FilterChain{chainFor(t, hcmFor(t, routeName, mod))}}
}

// tlsChain adds a TLS filter chain for serverNames with the given secret.
func tlsChain(t testing.TB, h *hcmv3.HttpConnectionManager, secret string, alpn []string, serverNames ...string) *listenerv3.FilterChain {
	fc := chainFor(t, h)
	fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: serverNames}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: secret, SdsConfig: adsSource()}},
		AlpnProtocols:                  alpn,
	}}
	fc.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, ctx)}}
	return fc
}

func tlsInspector(t testing.TB) *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &tlsinspectorv3.TlsInspector{})}}
}

func edsCluster(t testing.TB, name string, h2 bool, mod func(*clusterv3.Cluster)) *clusterv3.Cluster {
	c := &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:   durationpb.New(time.Second)}
	if h2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": anyOf(t, &httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}}),
		}
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func cla(name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for _, a := range addrs {
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(a)}}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}}
}

func routeConfig(name string, vhosts ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}

func toCluster(c string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c}}}
}

func prefixRoute(prefix, cluster string) *routev3.Route {
	return &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}}, Action: toCluster(cluster)}
}

func hv(k, v string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: action}
}

var _ = wrapperspb.Bool

// Addresses on loopback.

// freeAddr returns an unused 127.x.y.z:port.
func freeAddr(t testing.TB) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(250), 1+rand.IntN(250))
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("no free loopback address")
	return ""
}

// backend is a real HTTP server that echoes what it received.
type backend struct {
	name string
	addr string
	srv  *http.Server
}

type echo struct {
	Backend string      `json:"backend"`
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Host    string      `json:"host"`
	Header  http.Header `json:"header"`
	Body    string      `json:"body"`
	Proto   string      `json:"proto"`
}

func startBackend(t testing.TB, name string, handler http.Handler) *backend {
	t.Helper()
	addr := freeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: addr}
	if handler == nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Backend", name)
			w.Header().Set("Server", "backend-server")
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(echo{Backend: name, Method: r.Method, Path: r.RequestURI, Host: r.Host,
				Header: r.Header, Body: string(body), Proto: r.Proto})
		})
	}
	b.srv = &http.Server{Handler: handler}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// testEventLoops runs every proxy the tests start on that many event loops
// (NODEMESH_TEST_EVENT_LOOPS=n; make test runs the package without it and
// with 2): the whole suite then covers the loops' serving path, which
// nodemesh-proxy runs by default, with connections spread over loops that
// each keep idle upstream connections of their own. Every busy loop keeps
// a P, and tests run proxies side by side.
var testEventLoops = eventLoopsFromEnv()

func eventLoopsFromEnv() int {
	v := os.Getenv("NODEMESH_TEST_EVENT_LOOPS")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 8 {
		panic(fmt.Sprintf("NODEMESH_TEST_EVENT_LOOPS=%q: want a count 1..8", v))
	}
	if runtime.GOMAXPROCS(0) < 16*n {
		runtime.GOMAXPROCS(16 * n)
	}
	return n
}

// startProxy runs a proxy against the xDS socket until the test ends.
func startProxy(t testing.TB, sock string, opts ...proxylib.Option) *proxylib.Proxy {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	base := []proxylib.Option{proxylib.WithXDSAddress("unix://" + sock), proxylib.WithNodeID(nodeID),
		proxylib.WithLogger(logger), proxylib.WithDrainTimeout(5 * time.Second), proxylib.WithLocalAddress("10.1.2.3"),
		proxylib.WithReconnectBackoff(50*time.Millisecond, 200*time.Millisecond)}
	if testEventLoops > 0 {
		base = append(base, proxylib.WithEventLoops(testEventLoops))
	}
	p, err := proxylib.New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// client returns an HTTP/1.1 client with keep-alive and no redirects.
func client() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}
}

// do sends a request and returns status, headers, body.
func do(t testing.TB, c *http.Client, method, url, host string, hdr map[string]string, body io.Reader) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (host %s): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// waitServing polls url until it answers with a status other than a
// connection error.
func waitServing(t testing.TB, url, host string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	// A listener can answer before its clusters have their endpoints (503);
	// that is not serving yet. A route meant to answer 503 is accepted
	// after a grace period.
	var first503 time.Time
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return
			}
			if first503.IsZero() {
				first503 = time.Now()
			} else if time.Since(first503) > 3*time.Second {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never served", url)
}

func decodeEcho(t testing.TB, body string) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("decoding backend echo %q: %v", body, err)
	}
	return e
}

func sortedKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func vh(name string, domain string, routes ...*routev3.Route) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: []string{domain}, Routes: routes}
}
