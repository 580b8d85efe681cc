package rbac

import (
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
)

// Builders for the permissions and principals the translator emits.

func regex(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

func headerRE(name, re string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: regex(re)}}}}
}

func cidrRange(s string) *corev3.CidrRange {
	p := netip.MustParsePrefix(s)
	return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
}

func dstIP(s string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidrRange(s)}}
}

func dstPort(p uint32) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: p}}
}

func and(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func or(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func not(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func urlPathRE(re string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: regex(re)}}}}
}

func anyPerm() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }

func srcIPs(cidrs ...string) *rbacv3.Principal {
	var ids []*rbacv3.Principal
	for _, c := range cidrs {
		ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidrRange(c)}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func anyone() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func spiffe(id string) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
		PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}}}}
}

func policy(perm *rbacv3.Permission, prins ...*rbacv3.Principal) *rbacv3.Policy {
	return &rbacv3.Policy{Permissions: []*rbacv3.Permission{perm}, Principals: prins}
}

// compile turns an RBAC filter config into an engine through the same
// decoder the proxy uses for ECDS.
func compile(t testing.TB, action rbacv3.RBAC_Action, policies map[string]*rbacv3.Policy) *Engine {
	t.Helper()
	e, err := compileErr(&rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: action, Policies: policies}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func compileErr(cfg *rbacfilterv3.RBAC) (*Engine, error) {
	inner, err := anypb.New(cfg)
	if err != nil {
		return nil, err
	}
	tc, err := anypb.New(&corev3.TypedExtensionConfig{Name: "policy/ingress/http/rbac", TypedConfig: inner})
	if err != nil {
		return nil, err
	}
	ext, err := resource.DecodeExtension(tc)
	if err != nil {
		return nil, err
	}
	return New(ext.RBAC), nil
}

type req struct {
	method, path, host string
	headers            []string
	src, dst           string
}

func (r req) input() *Input {
	rr := &route.Request{Method: []byte(r.method), Path: []byte(r.path), Authority: []byte(r.host), Scheme: []byte("http")}
	for i := 0; i+1 < len(r.headers); i += 2 {
		rr.Headers.Add([]byte(r.headers[i]), []byte(r.headers[i+1]))
	}
	in := &Input{Req: rr}
	if r.src != "" {
		in.Remote = netip.MustParseAddrPort(r.src)
	}
	if r.dst != "" {
		in.Local = netip.MustParseAddrPort(r.dst)
	}
	return in
}

// starWars is the policy the translator emits for Cilium's Star Wars demo:
// deathstar (10.0.0.10:80) admits POST /v1/request-landing from the empire
// identity's addresses.
func starWars(t testing.TB) *Engine {
	return compile(t, rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"cnp/default/rule1/ingress/0/port/80/http/0": policy(
			and(dstIP("10.0.0.10/32"), dstPort(80), headerRE(":method", "POST"), headerRE(":path", "/v1/request-landing")),
			srcIPs("10.0.1.5/32", "10.0.1.6/32")),
	})
}

func TestStarWars(t *testing.T) {
	e := starWars(t)
	for _, tc := range []struct {
		name   string
		r      req
		allow  bool
		policy string
	}{
		{"tiefighter lands", req{method: "POST", path: "/v1/request-landing", src: "10.0.1.5:40000", dst: "10.0.0.10:80"}, true, "cnp/default/rule1/ingress/0/port/80/http/0"},
		{"exhaust port denied", req{method: "PUT", path: "/v1/exhaust-port", src: "10.0.1.5:40000", dst: "10.0.0.10:80"}, false, ""},
		{"path regex is anchored", req{method: "POST", path: "/v1/request-landing/x", src: "10.0.1.5:1", dst: "10.0.0.10:80"}, false, ""},
		{"method regex is anchored", req{method: "XPOST", path: "/v1/request-landing", src: "10.0.1.5:1", dst: "10.0.0.10:80"}, false, ""},
		{"query is part of :path", req{method: "POST", path: "/v1/request-landing?x=1", src: "10.0.1.5:1", dst: "10.0.0.10:80"}, false, ""},
		{"xwing source denied", req{method: "POST", path: "/v1/request-landing", src: "10.0.2.9:1", dst: "10.0.0.10:80"}, false, ""},
		{"other destination denied", req{method: "POST", path: "/v1/request-landing", src: "10.0.1.5:1", dst: "10.0.0.11:80"}, false, ""},
		{"other port denied", req{method: "POST", path: "/v1/request-landing", src: "10.0.1.5:1", dst: "10.0.0.10:8080"}, false, ""},
		{"ipv4-mapped addresses", req{method: "POST", path: "/v1/request-landing", src: "[::ffff:10.0.1.6]:1", dst: "[::ffff:10.0.0.10]:80"}, true, "cnp/default/rule1/ingress/0/port/80/http/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.r.input()
			ok, pol := e.Evaluate(in)
			if ok != tc.allow || pol != tc.policy {
				t.Fatalf("Evaluate = %v, %q; want %v, %q", ok, pol, tc.allow, tc.policy)
			}
			lok, lpol := e.EvaluateLinear(in)
			if lok != ok || lpol != pol {
				t.Fatalf("EvaluateLinear = %v, %q; Evaluate = %v, %q", lok, lpol, ok, pol)
			}
		})
	}
}

func TestSemantics(t *testing.T) {
	e := compile(t, rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		// Sorted name order decides which policy is reported.
		"a-grpc": policy(and(dstPort(50051), urlPathRE("/pkg\\.Greeter/SayHello")), anyone()),
		"b-host": policy(and(headerRE(":authority", "api\\.example\\.com"), not(headerRE(":method", "DELETE"))), srcIPs("192.168.0.0/16")),
		"c-header": policy(&rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: "x-token",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, anyone()),
		"d-spiffe": policy(or(dstPort(9000), dstPort(9001)), spiffe("spiffe://cluster.local/identity/42")),
		"e-any":    policy(anyPerm(), srcIPs("fd00::/64")),
	})
	for _, tc := range []struct {
		name   string
		r      req
		peer   []string
		allow  bool
		policy string
	}{
		{"grpc method by url_path", req{method: "POST", path: "/pkg.Greeter/SayHello", dst: "10.0.0.1:50051", src: "1.1.1.1:1"}, nil, true, "a-grpc"},
		{"url_path ignores the query", req{method: "POST", path: "/pkg.Greeter/SayHello?q#f", dst: "10.0.0.1:50051", src: "1.1.1.1:1"}, nil, true, "a-grpc"},
		{"other grpc method", req{method: "POST", path: "/pkg.Greeter/SayBye", dst: "10.0.0.1:50051", src: "1.1.1.1:1"}, nil, false, ""},
		{"host regex and not method", req{method: "GET", path: "/", host: "api.example.com", dst: "10.0.0.1:80", src: "192.168.3.4:1"}, nil, true, "b-host"},
		{"not rule denies DELETE", req{method: "DELETE", path: "/", host: "api.example.com", dst: "10.0.0.1:80", src: "192.168.3.4:1"}, nil, false, ""},
		{"header presence", req{method: "GET", path: "/", headers: []string{"x-token", ""}, dst: "10.0.0.1:80", src: "1.1.1.1:1"}, nil, true, "c-header"},
		{"authenticated peer", req{method: "GET", path: "/", dst: "10.0.0.1:9001", src: "1.1.1.1:1"}, []string{"spiffe://cluster.local/identity/42"}, true, "d-spiffe"},
		{"wrong peer", req{method: "GET", path: "/", dst: "10.0.0.1:9001", src: "1.1.1.1:1"}, []string{"spiffe://cluster.local/identity/7"}, false, ""},
		{"ipv6 source", req{method: "GET", path: "/", dst: "[fd00::2]:1", src: "[fd00::9]:1"}, nil, true, "e-any"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.r.input()
			in.Peer, in.Authenticated = tc.peer, tc.peer != nil
			ok, pol := e.Evaluate(in)
			if ok != tc.allow || pol != tc.policy {
				t.Fatalf("Evaluate = %v, %q; want %v, %q", ok, pol, tc.allow, tc.policy)
			}
		})
	}
}

func TestActionsAndEmptyRules(t *testing.T) {
	in := req{method: "GET", path: "/", dst: "10.0.0.1:80", src: "10.0.0.2:1"}.input()
	if ok, _ := New(nil).Evaluate(in); !ok {
		t.Fatal("a nil configuration denied")
	}
	noRules, err := compileErr(&rbacfilterv3.RBAC{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := noRules.Evaluate(in); !ok || noRules.Enforcing() {
		t.Fatal("an RBAC filter without rules denied")
	}
	if ok, _ := compile(t, rbacv3.RBAC_ALLOW, nil).Evaluate(in); ok {
		t.Fatal("ALLOW with no policies allowed a request")
	}
	deny := compile(t, rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"block": policy(headerRE(":method", "GET"), anyone())})
	if ok, pol := deny.Evaluate(in); ok || pol != "block" {
		t.Fatalf("DENY matched = %v %q", ok, pol)
	}
	in.Req.Method = []byte("POST")
	if ok, _ := deny.Evaluate(in); !ok {
		t.Fatal("DENY without a match denied")
	}
}

func TestIndexPinsDestinations(t *testing.T) {
	e := compile(t, rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"pinned":      policy(and(dstIP("10.0.0.1/32"), dstPort(80)), anyone()),
		"pinned-or":   policy(or(dstIP("10.0.0.2/32"), dstIP("10.0.0.3/32")), anyone()),
		"prefix":      policy(and(dstIP("10.1.0.0/16"), dstPort(80)), anyone()),
		"unpinned-or": policy(or(dstIP("10.0.0.4/32"), dstPort(81)), anyone()),
	})
	if len(e.byDst) != 3 || len(e.wildcard) != 2 {
		t.Fatalf("index: %d pinned addresses, %d wildcard policies; want 3 and 2", len(e.byDst), len(e.wildcard))
	}
	for dst, want := range map[string]string{"10.0.0.1:80": "pinned", "10.0.0.3:1": "pinned-or", "10.1.2.3:80": "prefix", "10.9.9.9:81": "unpinned-or"} {
		if ok, pol := e.Evaluate(req{method: "GET", path: "/", dst: dst, src: "1.1.1.1:1"}.input()); !ok || pol != want {
			t.Errorf("dst %s: %v %q, want %q", dst, ok, pol, want)
		}
	}
}

func TestInvalidConfigurations(t *testing.T) {
	for name, cfg := range map[string]*rbacfilterv3.RBAC{
		"bad regex": {Rules: &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"p": policy(headerRE(":path", "(["), anyone())}}},
		"bad cidr": {Rules: &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"p": policy(
			&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: &corev3.CidrRange{AddressPrefix: "10.0.0.300"}}}, anyone())}}},
		"no principals": {Rules: &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{anyPerm()}}}}},
		"log action":    {Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_LOG}},
		"condition": {Rules: &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{anyPerm()},
			Principals: []*rbacv3.Principal{anyone()}, Condition: nil, CheckedCondition: nil}}}, ShadowRulesStatPrefix: "x"},
	} {
		if _, err := compileErr(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

var _ = proto.Clone
