package proxylib_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	rsrc "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

func re(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func permHeader(name, regex string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: re(regex)}}}}
}

func permAnd(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func cidrOf(ip string, bits uint32) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: ip, PrefixLen: wrapperspb.UInt32(bits)}
}

func permDst(ip string, port uint32) []*rbacv3.Permission {
	return []*rbacv3.Permission{
		{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidrOf(ip, 32)}},
		{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: port}},
	}
}

func fromIPs(ips ...string) []*rbacv3.Principal {
	var ids []*rbacv3.Principal
	for _, ip := range ips {
		ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidrOf(ip, 32)}})
	}
	return []*rbacv3.Principal{{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}}
}

// starWarsRBAC is what the translator emits for Cilium's sw_l3_l4_l7
// policy: deathstar:80 admits POST /v1/request-landing from the empire's
// addresses; extra adds more allowed method/path pairs.
func starWarsRBAC(t testing.TB, extra ...[2]string) *corev3.TypedExtensionConfig {
	pols := map[string]*rbacv3.Policy{}
	rules := append([][2]string{{"POST", "/v1/request-landing"}}, extra...)
	for j, r := range rules {
		perms := append(permDst(deathstar, 80), permHeader(":method", r[0]), permHeader(":path", r[1]))
		pols[fmt.Sprintf("cnp/default/rule1/ingress/0/port/80/http/%d", j)] = &rbacv3.Policy{
			Permissions: []*rbacv3.Permission{permAnd(perms...)}, Principals: fromIPs(tiefighter, "10.99.1.6")}
	}
	// gRPC: only Check on the health service.
	pols["cnp/default/grpc/ingress/0/port/50051/http/0"] = &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{permAnd(append(permDst(grpcServer, 50051),
			&rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{
				Path: re("/grpc\\.health\\.v1\\.Health/Check")}}}})...)},
		Principals: fromIPs(tiefighter)}
	return rbacConfig(t, "policy/ingress/http/rbac", &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: pols}})
}

// deathstarServer is the Star Wars demo backend.
func deathstarServer(t *testing.T) {
	ln, err := net.Listen("tcp", deathstar+":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/request-landing":
			io.WriteString(w, "Ship landed\n")
		case r.Method == "PUT" && r.URL.Path == "/v1/exhaust-port":
			io.WriteString(w, "Panic: deathstar exploded\n")
		default:
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

type policyEnv struct {
	x   *xdsServer
	als *alsServer
	p   *proxylib.Proxy
}

// startPolicy serves the policy listeners and clusters with the given ECDS
// configurations and waits until the listeners serve.
func startPolicy(t *testing.T, ecds ...proto.Message) *policyEnv {
	e := &policyEnv{x: startXDS(t, "", nil), als: startALS(t)}
	e.set(t, ecds...)
	e.p = startProxy(t, e.x.sock)
	deadline := time.Now().Add(10 * time.Second)
	for len(e.p.Listeners()) < 2 || !e.p.Store().Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("policy listeners not serving: %v; status %+v", e.p.Listeners(), e.p.Store().Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

func (e *policyEnv) set(t *testing.T, ecds ...proto.Message) string {
	res := []proto.Message{httpPolicyListener(t), kafkaPolicyListener(t), policyRoutes(), originalDstCluster(t), alsCluster(t, e.als.sock)}
	return e.x.set(append(res, ecds...)...)
}

func httpFrom(src string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialFrom(src).DialContext, DisableCompression: true}}
}

func TestPolicyStarWars(t *testing.T) {
	if !inPolicyNetns(t) {
		return
	}
	deathstarServer(t)
	e := startPolicy(t, starWarsRBAC(t), kafkaConfig(t, "policy/egress/kafka", openKafka()))
	tie, xw := httpFrom(tiefighter), httpFrom(xwing)
	url := "http://" + deathstar

	code, _, body := do(t, tie, "POST", url+"/v1/request-landing", "deathstar.default.svc.cluster.local", nil, nil)
	if code != 200 || body != "Ship landed\n" {
		t.Fatalf("tiefighter landing: %d %q", code, body)
	}
	code, hdr, body := do(t, tie, "PUT", url+"/v1/exhaust-port", "deathstar.default.svc.cluster.local", nil, nil)
	if code != 403 || body != "Access denied\r\n" || hdr.Get("Content-Type") != "text/plain" {
		t.Fatalf("exhaust port: %d %q %v", code, body, hdr)
	}
	// The path regex is anchored: a subtree is not allowed.
	if code, _, _ := do(t, tie, "POST", url+"/v1/request-landing/x", "", nil, nil); code != 403 {
		t.Fatalf("landing subtree: %d", code)
	}
	// An identity the policy does not list (the datapath drops it before
	// the proxy; the proxy denies it too).
	if code, _, body := do(t, xw, "POST", url+"/v1/request-landing", "", nil, nil); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("xwing: %d %q", code, body)
	}

	// Access log: one entry per request, with the L7 verdict.
	allowed := e.als.waitHTTP(t, "for the landing", func(x *datav3.HTTPAccessLogEntry) bool {
		return x.GetRequest().GetPath() == "/v1/request-landing" && x.GetResponse().GetResponseCode().GetValue() == 200
	})
	m := l7(allowed.GetCommonProperties())
	if m[l7meta.Verdict] != l7meta.VerdictForwarded || m[l7meta.Policy] != "cnp/default/rule1/ingress/0/port/80/http/0" || m[l7meta.Protocol] != "http" {
		t.Fatalf("allowed entry metadata %v", m)
	}
	if a := allowed.GetCommonProperties().GetDownstreamLocalAddress().GetSocketAddress(); a.GetAddress() != deathstar || a.GetPortValue() != 80 {
		t.Fatalf("entry destination %v, want the original destination", a)
	}
	if a := allowed.GetCommonProperties().GetDownstreamRemoteAddress().GetSocketAddress(); a.GetAddress() != tiefighter {
		t.Fatalf("entry source %v", a)
	}
	denied := e.als.waitHTTP(t, "for the exhaust port", func(x *datav3.HTTPAccessLogEntry) bool {
		return x.GetRequest().GetPath() == "/v1/exhaust-port"
	})
	m = l7(denied.GetCommonProperties())
	if denied.GetResponse().GetResponseCode().GetValue() != 403 || m[l7meta.Verdict] != l7meta.VerdictDropped || m[l7meta.Reason] != "rbac_access_denied" ||
		denied.GetRequest().GetRequestMethod() != corev3.RequestMethod_PUT {
		t.Fatalf("denied entry %v metadata %v", denied, m)
	}
}

// TestPolicyUpdateKeepsConnections changes the RBAC policy through ECDS
// while a keep-alive connection is open: the connection stays, its next
// request sees the new policy, and the listener is not re-created.
func TestPolicyUpdateKeepsConnections(t *testing.T) {
	if !inPolicyNetns(t) {
		return
	}
	deathstarServer(t)
	e := startPolicy(t, starWarsRBAC(t), kafkaConfig(t, "policy/egress/kafka", openKafka()))
	c, err := dialFrom(tiefighter).Dial("tcp", deathstar+":80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := newRawClient(c)
	if code, _ := br.do(t, "PUT", "/v1/exhaust-port"); code != 403 {
		t.Fatalf("before the update: %d", code)
	}
	v := e.set(t, starWarsRBAC(t, [2]string{"PUT", "/v1/exhaust-port"}), kafkaConfig(t, "policy/egress/kafka", openKafka()))
	e.x.waitACK(rsrc.ExtensionConfigType, v)
	if code, body := br.do(t, "PUT", "/v1/exhaust-port"); code != 200 || body != "Panic: deathstar exploded\n" {
		t.Fatalf("after the update, same connection: %d %q", code, body)
	}
	for _, l := range e.p.Store().Status().Listeners {
		if l.State != "active" {
			t.Fatalf("listener %s %s", l.Name, l.State)
		}
	}

	// An invalid policy is NACKed naming the resource and field; the
	// previous one keeps being enforced.
	bad := starWarsRBAC(t)
	bad.TypedConfig = anyOf(t, &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{
		"cnp/default/bad/ingress/0/port/80/http/0": {Permissions: []*rbacv3.Permission{permHeader(":path", "/v1/(")}, Principals: fromIPs(tiefighter)}}}})
	e.set(t, bad, kafkaConfig(t, "policy/egress/kafka", openKafka()))
	waitFor(t, func() bool {
		for _, n := range e.x.nackMessages() {
			if strings.Contains(n, `extension config "policy/ingress/http/rbac"`) && strings.Contains(n, `policies["cnp/default/bad/ingress/0/port/80/http/0"]`) &&
				strings.Contains(n, "invalid RE2 regex") {
				return true
			}
		}
		return false
	}, "NACK of the invalid policy")
	if code, _ := br.do(t, "PUT", "/v1/exhaust-port"); code != 200 {
		t.Fatalf("after the NACK the previous policy changed: %d", code)
	}
}

// rawClient speaks HTTP/1.1 keep-alive over one connection.
type rawClient struct {
	c  net.Conn
	hc *http.Client
}

func newRawClient(c net.Conn) *rawClient {
	used := false
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		if used {
			return nil, fmt.Errorf("the client needed a second connection")
		}
		used = true
		return c, nil
	}, MaxIdleConnsPerHost: 1}
	return &rawClient{c: c, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (r *rawClient) do(t *testing.T, method, path string) (int, string) {
	t.Helper()
	code, _, body := do(t, r.hc, method, "http://"+deathstar+path, "", nil, nil)
	return code, body
}

func TestPolicyGRPC(t *testing.T) {
	if !inPolicyNetns(t) {
		return
	}
	ln, err := net.Listen("tcp", grpcServer+":50051")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	e := startPolicy(t, starWarsRBAC(t), kafkaConfig(t, "policy/egress/kafka", openKafka()))

	conn, err := grpc.NewClient("passthrough:///"+grpcServer+":50051", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialFrom(tiefighter).DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("allowed method: %v %v", resp, err)
	}
	_, err = hc.List(ctx, &healthpb.HealthListRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("denied method: %v, want PermissionDenied", err)
	}
	if msg := status.Convert(err).Message(); msg != "Access denied\r\n" {
		t.Fatalf("grpc-message %q", msg)
	}
	// Both calls are logged with their gRPC method and status.
	e.als.waitHTTP(t, "for Check", func(x *datav3.HTTPAccessLogEntry) bool {
		m := l7(x.GetCommonProperties())
		return m[l7meta.GRPCMethod] == "Check" && m[l7meta.GRPCStatus] == 0.0 && m[l7meta.Protocol] == "grpc" && m[l7meta.Verdict] == l7meta.VerdictForwarded
	})
	e.als.waitHTTP(t, "for List", func(x *datav3.HTTPAccessLogEntry) bool {
		m := l7(x.GetCommonProperties())
		return m[l7meta.GRPCService] == "grpc.health.v1.Health" && m[l7meta.GRPCMethod] == "List" && m[l7meta.GRPCStatus] == 7.0 && m[l7meta.Verdict] == l7meta.VerdictDropped
	})
}
