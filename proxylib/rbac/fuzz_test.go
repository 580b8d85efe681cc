package rbac

import (
	"fmt"
	"net/netip"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/proto"
)

// fuzzEngine mixes destination-pinned and unpinned policies of every
// permission and principal kind, so the index and the linear walk can
// disagree if the index is wrong.
func fuzzEngine(t testing.TB) *Engine {
	pols := map[string]*rbacv3.Policy{}
	for i := 0; i < 8; i++ {
		dst := fmt.Sprintf("10.0.0.%d/32", 10+i)
		pols[fmt.Sprintf("cnp/ns/p%d/ingress/0/port/80/http/0", i)] = policy(
			and(dstIP(dst), dstPort(80), headerRE(":method", "GET|POST"), headerRE(":path", fmt.Sprintf("/v%d/.*", i))),
			srcIPs("10.0.1.0/24", "fd00::/64"))
	}
	pols["grpc"] = policy(and(or(dstIP("10.0.0.20/32"), dstIP("10.0.0.21/32")), urlPathRE("/pkg\\.Svc/(Get|List)")), anyone())
	pols["host"] = policy(and(headerRE(":authority", "[a-z]+\\.example"), not(headerRE(":method", "DELETE"))), srcIPs("0.0.0.0/0"))
	pols["ports"] = policy(or(dstPort(8080), dstIP("10.2.0.0/16")), spiffe("spiffe://td/identity/9"))
	return compile(t, rbacv3.RBAC_ALLOW, pols)
}

// FuzzEvaluate feeds arbitrary requests to a compiled policy set: nothing
// panics and the destination index agrees with evaluating every policy.
func FuzzEvaluate(f *testing.F) {
	e := fuzzEngine(f)
	f.Add("POST", "/v1/request-landing", "deathstar", "x-token", "1", []byte{10, 0, 1, 5}, []byte{10, 0, 0, 11}, uint16(80), false)
	f.Add("PUT", "/v1/exhaust-port", "deathstar", "", "", []byte{10, 0, 1, 5}, []byte{10, 0, 0, 10}, uint16(80), false)
	f.Add("POST", "/pkg.Svc/Get", "svc:50051", "content-type", "application/grpc", []byte{1, 2, 3, 4}, []byte{10, 0, 0, 21}, uint16(50051), false)
	f.Add("GET", "/?q#f", "a.example", "", "", []byte{9, 9, 9, 9}, []byte{10, 2, 3, 4}, uint16(8080), true)
	f.Add("GET", "/v3/x", "", "", "", []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{10, 0, 0, 13}, uint16(80), false)
	f.Fuzz(func(t *testing.T, method, path, host, hname, hval string, src, dst []byte, port uint16, authn bool) {
		r := req{method: method, path: path, host: host, headers: []string{hname, hval}}
		in := r.input()
		if a, ok := netip.AddrFromSlice(src); ok {
			in.Remote = netip.AddrPortFrom(a, 40000)
		}
		if a, ok := netip.AddrFromSlice(dst); ok {
			in.Local = netip.AddrPortFrom(a, port)
		}
		if authn {
			in.Authenticated, in.Peer = true, []string{"spiffe://td/identity/9", host}
		}
		ok1, p1 := e.Evaluate(in)
		ok2, p2 := e.EvaluateLinear(in)
		if ok1 != ok2 || p1 != p2 {
			t.Fatalf("index %v %q, linear %v %q", ok1, p1, ok2, p2)
		}
		if ok1 && p1 == "" {
			t.Fatal("allowed without a policy")
		}
	})
}

// FuzzDecode feeds arbitrary RBAC filter configurations through the
// decoder: invalid ones are rejected with an error, valid ones evaluate
// without panicking and consistently.
func FuzzDecode(f *testing.F) {
	seed := func(pols map[string]*rbacv3.Policy) {
		b, err := proto.Marshal(&rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Policies: pols}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(map[string]*rbacv3.Policy{"sw": policy(and(dstIP("10.0.0.10/32"), headerRE(":method", "POST")), srcIPs("10.0.1.5/32"))})
	seed(map[string]*rbacv3.Policy{"n": policy(not(or(dstPort(1), urlPathRE("/a.*"))), spiffe("spiffe://td/identity/1"))})
	seed(map[string]*rbacv3.Policy{"any": policy(anyPerm(), anyone())})
	in := req{method: "POST", path: "/a/b?c", host: "h", src: "10.0.1.5:1", dst: "10.0.0.10:80"}.input()
	f.Fuzz(func(t *testing.T, b []byte) {
		var cfg rbacfilterv3.RBAC
		if proto.Unmarshal(b, &cfg) != nil {
			return
		}
		e, err := compileErr(&cfg)
		if err != nil {
			return
		}
		ok1, p1 := e.Evaluate(in)
		ok2, p2 := e.EvaluateLinear(in)
		if ok1 != ok2 || p1 != p2 {
			t.Fatalf("index %v %q, linear %v %q", ok1, p1, ok2, p2)
		}
	})
}
