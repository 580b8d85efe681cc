package proxylib_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpclogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
	"github.com/nodemesh/nodemesh/proxylib/transparent"
)

// The policy tests run in a network namespace of their own that steers
// traffic to "pod" addresses into the proxy's transparent listeners with
// iptables TPROXY, the way the datapath's fallback mode does:
//
//	lo: 127.0.0.1, pods 10.99.0.0/24 (servers), clients 10.99.1.0/24 and
//	    10.99.2.0/24
//	mangle OUTPUT: TCP from clients to 10.99.0.0/24 → mark 1; the proxy's
//	    own connections to pods must carry the proxy mark (others refused)
//	rule fwmark 1 → table 100: local 0.0.0.0/0 dev lo
//	mangle PREROUTING: TCP to 10.99.0.0/24 marked 1 → TPROXY to the HTTP
//	    policy listener (port 80 and 50051) or the Kafka one (other ports)
//
// The proxy's upstream sockets carry the mark from the ORIGINAL_DST
// cluster's SO_MARK socket option; without it they would be redirected
// into the proxy again.
const (
	httpPolicyPort  = 15001
	kafkaPolicyPort = 15002
	deathstar       = "10.99.0.5"
	grpcServer      = "10.99.0.7"
	kafkaBroker     = "10.99.0.6"
	tiefighter      = "10.99.1.5"
	xwing           = "10.99.2.9"
)

const netnsEnv = "NODEMESH_PROXYLIB_POLICY_NETNS"

// inPolicyNetns reports whether the test runs inside its policy namespace.
// Called outside, it re-runs the test in a child process in a fresh
// network namespace, reports its outcome and returns false.
func inPolicyNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		setupPolicyNetns(t)
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("policy tests need root for a network namespace, TPROXY and SO_MARK")
	}
	for _, bin := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("policy tests need %s: install the test tools with `make deps` (as root)", bin)
		}
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.timeout=5m"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if testing.Verbose() || err != nil {
		t.Logf("in its own network namespace:\n%s", out)
	}
	if err != nil {
		t.Fatalf("policy test in its namespace: %v", err)
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Skip("skipped in its namespace")
	}
	return false
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func setupPolicyNetns(t *testing.T) {
	run(t, "ip", "link", "set", "lo", "up")
	for _, a := range []string{deathstar, grpcServer, kafkaBroker, tiefighter, xwing, "10.99.1.6"} {
		run(t, "ip", "addr", "add", a+"/32", "dev", "lo")
	}
	run(t, "ip", "rule", "add", "fwmark", "0x1/0x1", "lookup", "100")
	run(t, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
	// Client connections to pods are steered to the proxy.
	for _, clients := range []string{"10.99.1.0/24", "10.99.2.0/24"} {
		run(t, "iptables", "-t", "mangle", "-A", "OUTPUT", "-p", "tcp", "-s", clients, "-d", "10.99.0.0/24",
			"-j", "MARK", "--set-mark", "0x1")
	}
	// The proxy's own connections to pods must carry the proxy mark, as
	// the datapath requires; unmarked ones are refused.
	mark, _ := transparent.UpstreamMark(0)
	run(t, "iptables", "-A", "OUTPUT", "-p", "tcp", "--syn", "-s", "10.99.0.0/24", "-d", "10.99.0.0/24",
		"-m", "mark", "!", "--mark", fmt.Sprintf("0x%x/0xf00", mark), "-j", "REJECT", "--reject-with", "tcp-reset")
	tproxy := func(match []string, port int) {
		args := append([]string{"-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-d", "10.99.0.0/24"}, match...)
		args = append(args, "-m", "mark", "--mark", "0x1/0x1", "-j", "TPROXY", "--on-ip", "127.0.0.1",
			"--on-port", fmt.Sprint(port), "--tproxy-mark", "0x1/0x1")
		run(t, "iptables", args...)
	}
	tproxy([]string{"-m", "multiport", "--dports", "80,50051"}, httpPolicyPort)
	tproxy(nil, kafkaPolicyPort)
}

// dialFrom returns a dialer whose connections come from a client address.
func dialFrom(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
}

// Policy resources, exactly as the translator contract describes them.

func adsECDS(typeURL string) *corev3.ExtensionConfigSource {
	return &corev3.ExtensionConfigSource{ConfigSource: adsSource(), TypeUrls: []string{typeURL}}
}

func alsLog(t testing.TB, tcp bool, logName string) []*accesslogv3.AccessLog {
	common := &grpclogv3.CommonGrpcAccessLogConfig{LogName: logName, TransportApiVersion: corev3.ApiVersion_V3,
		GrpcService:         &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "nodemesh-als"}}},
		BufferFlushInterval: durationpb.New(20 * time.Millisecond)}
	if tcp {
		return []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.tcp_grpc", ConfigType: &accesslogv3.AccessLog_TypedConfig{
			TypedConfig: anyOf(t, &grpclogv3.TcpGrpcAccessLogConfig{CommonConfig: common})}}}
	}
	return []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.http_grpc", ConfigType: &accesslogv3.AccessLog_TypedConfig{
		TypedConfig: anyOf(t, &grpclogv3.HttpGrpcAccessLogConfig{CommonConfig: common})}}}
}

func originalDstFilter(t testing.TB) *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: "envoy.filters.listener.original_dst",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &origdstv3.OriginalDst{})}}
}

func httpPolicyListener(t testing.TB) *listenerv3.Listener {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix:     "policy_ingress_http",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "policy/ingress/http", ConfigSource: adsSource()}},
		HttpFilters: []*hcmv3.HttpFilter{
			// A discovered filter is named after its ECDS resource.
			{Name: "policy/ingress/http/rbac", ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: adsECDS("type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC")}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}},
		},
		// Envoy's validation refuses an "RBAC" response flag filter, so the
		// translator maps the status of the local reply instead.
		LocalReplyConfig: &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{{
			Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
				StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
					Value: &corev3.RuntimeUInt32{DefaultValue: 403, RuntimeKey: "nodemesh.policy.denied_status"}}}}},
			Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "Access denied\r\n"}},
		}}},
		AccessLog: alsLog(t, false, "policy/ingress/http"),
	}
	return &listenerv3.Listener{Name: "policy/ingress/http", Address: sockAddr(fmt.Sprintf("127.0.0.1:%d", httpPolicyPort)),
		Transparent: wrapperspb.Bool(true), ListenerFilters: []*listenerv3.ListenerFilter{originalDstFilter(t)},
		FilterChains: []*listenerv3.FilterChain{chainFor(t, h)}}
}

func kafkaPolicyListener(t testing.TB) *listenerv3.Listener {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: "policy_egress_kafka",
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "policy/original-dst"}, AccessLog: alsLog(t, true, "policy/egress/kafka")}
	return &listenerv3.Listener{Name: "policy/egress/kafka", Address: sockAddr(fmt.Sprintf("127.0.0.1:%d", kafkaPolicyPort)),
		Transparent: wrapperspb.Bool(true), ListenerFilters: []*listenerv3.ListenerFilter{originalDstFilter(t)},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
			{Name: "policy/egress/kafka", ConfigType: &listenerv3.Filter_ConfigDiscovery{ConfigDiscovery: adsECDS(kafkav1.TypeURL)}},
			{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, tp)}},
		}}}}
}

func policyRoutes() *routev3.RouteConfiguration {
	r := prefixRoute("/", "policy/original-dst")
	r.GetRoute().Timeout = durationpb.New(0)
	return routeConfig("policy/ingress/http", vh("policy", "*", r))
}

func originalDstCluster(t testing.TB) *clusterv3.Cluster {
	mark, _ := transparent.UpstreamMark(0)
	return &clusterv3.Cluster{Name: "policy/original-dst",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED, ConnectTimeout: durationpb.New(2 * time.Second),
		UpstreamBindConfig: &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "0.0.0.0",
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}},
			SocketOptions: []*corev3.SocketOption{{Level: 1, Name: 36, Value: &corev3.SocketOption_IntValue{IntValue: int64(mark)},
				State: corev3.SocketOption_STATE_PREBIND}}},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": anyOf(t, &httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
					UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}}}),
		}}
}

func alsCluster(t testing.TB, sock string) *clusterv3.Cluster {
	c := edsCluster(t, "nodemesh-als", true, nil)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.EdsClusterConfig = nil
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: "nodemesh-als", Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: sock}}}}}}}}}}
	return c
}

func rbacConfig(t testing.TB, name string, cfg *rbacfilterv3.RBAC) *corev3.TypedExtensionConfig {
	return &corev3.TypedExtensionConfig{Name: name, TypedConfig: anyOf(t, cfg)}
}

func kafkaConfig(t testing.TB, name string, cfg *kafkav1.KafkaPolicy) *corev3.TypedExtensionConfig {
	return &corev3.TypedExtensionConfig{Name: name, TypedConfig: anyOf(t, cfg)}
}

// alsServer is a real AccessLogService server on a Unix socket.
type alsServer struct {
	alsv3.UnimplementedAccessLogServiceServer
	sock string
	mu   sync.Mutex
	http []*datav3.HTTPAccessLogEntry
	tcp  []*datav3.TCPAccessLogEntry
	ids  []string // log names of the streams' identifiers
}

func startALS(t testing.TB) *alsServer {
	s := &alsServer{sock: filepath.Join(t.TempDir(), "als.sock")}
	ln, err := net.Listen("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	alsv3.RegisterAccessLogServiceServer(gs, s)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return s
}

func (s *alsServer) StreamAccessLogs(st alsv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		m, err := st.Recv()
		if err != nil {
			return nil
		}
		s.mu.Lock()
		if id := m.GetIdentifier(); id != nil {
			s.ids = append(s.ids, id.GetLogName())
		}
		s.http = append(s.http, m.GetHttpLogs().GetLogEntry()...)
		s.tcp = append(s.tcp, m.GetTcpLogs().GetLogEntry()...)
		s.mu.Unlock()
	}
}

// l7 returns an entry's nodemesh.l7 fields as plain Go values.
func l7(c *datav3.AccessLogCommon) map[string]any {
	return c.GetMetadata().GetFilterMetadata()[l7meta.Namespace].AsMap()
}

// waitHTTPLog waits for an HTTP entry matching pred.
func (s *alsServer) waitHTTP(t testing.TB, what string, pred func(*datav3.HTTPAccessLogEntry) bool) *datav3.HTTPAccessLogEntry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, e := range s.http {
			if pred(e) {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	for _, e := range s.http {
		t.Logf("entry: %s %v", e.GetRequest().GetPath(), l7(e.GetCommonProperties()))
	}
	s.mu.Unlock()
	t.Fatalf("no access-log entry %s", what)
	return nil
}

func (s *alsServer) waitTCP(t testing.TB, what string, pred func(*datav3.TCPAccessLogEntry) bool) *datav3.TCPAccessLogEntry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, e := range s.tcp {
			if pred(e) {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	for _, e := range s.tcp {
		t.Logf("entry: %v", l7(e.GetCommonProperties()))
	}
	s.mu.Unlock()
	t.Fatalf("no access-log entry %s", what)
	return nil
}

var _ = context.Background
var _ = proto.Clone
