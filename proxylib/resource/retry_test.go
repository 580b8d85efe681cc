package resource

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// actionRoute is a route configuration with one forwarding route whose
// action mod edits.
func actionRoute(t testing.TB, mod func(*routev3.RouteAction)) *anypb.Any {
	ra := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}
	mod(ra)
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: ra},
		}},
	}}}
	if err := rc.ValidateAll(); err != nil {
		t.Fatalf("test resource fails Envoy's validation: %v", err)
	}
	return mustAny(t, rc)
}

func forwardOf(t *testing.T, a *anypb.Any) *Forward {
	t.Helper()
	rc, err := DecodeRouteConfig(a)
	if err != nil {
		t.Fatal(err)
	}
	return rc.VirtualHosts[0].Routes[0].Forward
}

func TestDecodeRetryPolicy(t *testing.T) {
	prev := &routev3.RetryPolicy_RetryHostPredicate{Name: "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(t, &previoushostsv3.PreviousHostsPredicate{})}}
	for _, tc := range []struct {
		name string
		rp   *routev3.RetryPolicy
		want *RetryPolicy
	}{
		{"no conditions: no retries", &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(3)}, nil},
		{"defaults", &routev3.RetryPolicy{RetryOn: "5xx"},
			&RetryPolicy{On: Retry5xx, NumRetries: 1, BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond, HostSelectionAttempts: 1}},
		{"everything", &routev3.RetryPolicy{RetryOn: " gateway-error, reset,connect-failure,retriable-4xx,refused-stream,retriable-status-codes,envoy-ratelimited,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable ",
			NumRetries: wrapperspb.UInt32(4), RetriableStatusCodes: []uint32{500, 418},
			RetryBackOff:       &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(100 * time.Millisecond), MaxInterval: durationpb.New(time.Second)},
			RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{prev}, HostSelectionRetryMaxAttempts: 3},
			&RetryPolicy{On: RetryGatewayError | RetryReset | RetryConnectFailure | RetryRetriable4xx | RetryRefusedStream | RetryStatusCodes |
				RetryEnvoyRateLimited | RetryGRPC, NumRetries: 4, StatusCodes: []int{500, 418},
				BaseInterval: 100 * time.Millisecond, MaxInterval: time.Second, PreviousHosts: true, HostSelectionAttempts: 3}},
		{"sub-millisecond base rounds up", &routev3.RetryPolicy{RetryOn: "5xx", RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Microsecond)}},
			&RetryPolicy{On: Retry5xx, NumRetries: 1, BaseInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond, HostSelectionAttempts: 1}},
		{"zero retries", &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(0)},
			&RetryPolicy{On: Retry5xx, BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond, HostSelectionAttempts: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := forwardOf(t, actionRoute(t, func(ra *routev3.RouteAction) { ra.RetryPolicy = tc.rp }))
			if diff := cmp.Diff(tc.want, f.Retry); diff != "" {
				t.Fatalf("policy (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetryPolicyNACKs(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*routev3.RouteAction)
		want string
	}{
		{"unknown condition", func(ra *routev3.RouteAction) { ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,sometimes"} },
			`retry_policy.retry_on: condition "sometimes" not supported by nodemesh-proxy`},
		{"reset before request", func(ra *routev3.RouteAction) { ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "reset-before-request"} },
			`retry_policy.retry_on: condition "reset-before-request" not supported by nodemesh-proxy`},
		{"per-try idle timeout", func(ra *routev3.RouteAction) {
			ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", PerTryIdleTimeout: durationpb.New(time.Second)}
		}, `retry_policy.per_try_idle_timeout: field not supported by nodemesh-proxy`},
		{"retriable headers", func(ra *routev3.RouteAction) {
			ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", RetriableHeaders: []*routev3.HeaderMatcher{{Name: "x"}}}
		}, `retry_policy.retriable_headers: field not supported by nodemesh-proxy`},
		{"rate-limited back-off", func(ra *routev3.RouteAction) {
			ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", RateLimitedRetryBackOff: &routev3.RetryPolicy_RateLimitedRetryBackOff{
				ResetHeaders: []*routev3.RetryPolicy_ResetHeader{{Name: "retry-after"}}}}
		}, `retry_policy.rate_limited_retry_back_off: field not supported by nodemesh-proxy`},
		{"max below base", func(ra *routev3.RouteAction) {
			ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
				BaseInterval: durationpb.New(time.Second), MaxInterval: durationpb.New(time.Millisecond)}}
		}, `retry_policy.retry_back_off.max_interval: 1ms is below base_interval 1s`},
		{"other host predicate", func(ra *routev3.RouteAction) {
			ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "p",
				ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(t, &routev3.RetryPolicy{})}}}}
		}, `retry_policy.retry_host_predicate[0].typed_config: type "type.googleapis.com/envoy.config.route.v3.RetryPolicy" not supported by nodemesh-proxy`},
		{"negative host selection attempts", func(ra *routev3.RouteAction) {
			ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", HostSelectionRetryMaxAttempts: -1}
		}, `retry_policy.host_selection_retry_max_attempts: -1 is outside 1..16`},
		{"mirror by header", func(ra *routev3.RouteAction) {
			ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{ClusterHeader: "x-mirror"}}
		}, `request_mirror_policies[0].cluster_header: field not supported by nodemesh-proxy`},
		{"mirror trace sampling", func(ra *routev3.RouteAction) {
			ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m", TraceSampled: wrapperspb.Bool(true)}}
		}, `request_mirror_policies[0].trace_sampled: field not supported by nodemesh-proxy`},
		{"mirror without cluster", func(ra *routev3.RouteAction) {
			ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{}}
		}, `request_mirror_policies[0].cluster: must not be empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRouteConfig(actionRoute(t, tc.mod))
			want := `route configuration "rc": virtual_hosts[0].routes[0].route.` + tc.want
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error\n got: %v\nwant: %s", err, want)
			}
		})
	}
}

func TestDecodeMirrors(t *testing.T) {
	frac := func(n uint32, d typev3.FractionalPercent_DenominatorType) *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: d}, RuntimeKey: "ignored"}
	}
	f := forwardOf(t, actionRoute(t, func(ra *routev3.RouteAction) {
		ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{
			{Cluster: "all"},
			{Cluster: "half", RuntimeFraction: frac(50, typev3.FractionalPercent_HUNDRED)},
			{Cluster: "rare", RuntimeFraction: frac(5, typev3.FractionalPercent_MILLION), DisableShadowHostSuffixAppend: true},
			{Cluster: "renamed", RuntimeFraction: frac(1, typev3.FractionalPercent_TEN_THOUSAND), HostRewriteLiteral: "shadow.example"},
		}
	}))
	want := []Mirror{
		{Cluster: "all", Suffix: true},
		{Cluster: "half", Numerator: 50, Denominator: 100, Suffix: true},
		{Cluster: "rare", Numerator: 5, Denominator: 1000000},
		{Cluster: "renamed", Numerator: 1, Denominator: 10000, HostRewrite: "shadow.example"},
	}
	if diff := cmp.Diff(want, f.Mirrors); diff != "" {
		t.Fatalf("mirrors (-want +got):\n%s", diff)
	}
}

// TestRetryDecisions is Envoy's decision table: which responses and
// resets each condition retries.
func TestRetryDecisions(t *testing.T) {
	p := func(on RetryOn, codes ...int) *RetryPolicy { return &RetryPolicy{On: on, StatusCodes: codes} }
	for _, tc := range []struct {
		name        string
		p           *RetryPolicy
		status      int
		grpc        int
		rateLimited bool
		want        bool
	}{
		{"5xx on 500", p(Retry5xx), 500, -1, false, true},
		{"5xx on 599", p(Retry5xx), 599, -1, false, true},
		{"5xx on 499", p(Retry5xx), 499, -1, false, false},
		{"gateway-error on 502", p(RetryGatewayError), 502, -1, false, true},
		{"gateway-error on 504", p(RetryGatewayError), 504, -1, false, true},
		{"gateway-error on 500", p(RetryGatewayError), 500, -1, false, false},
		{"retriable-4xx on 409", p(RetryRetriable4xx), 409, -1, false, true},
		{"retriable-4xx on 429", p(RetryRetriable4xx), 429, -1, false, false},
		{"codes listed", p(RetryStatusCodes, 429, 418), 418, -1, false, true},
		{"codes not listed", p(RetryStatusCodes, 429), 503, -1, false, false},
		{"codes without the condition", p(Retry5xx, 418), 418, -1, false, false},
		{"rate limited without envoy-ratelimited", p(Retry5xx), 503, -1, true, false},
		{"rate limited with envoy-ratelimited", p(RetryEnvoyRateLimited), 429, -1, true, true},
		{"grpc unavailable", p(RetryGRPCUnavailable), 200, 14, false, true},
		{"grpc internal not configured", p(RetryGRPCUnavailable), 200, 13, false, false},
		{"grpc cancelled", p(RetryGRPCCancelled), 200, 1, false, true},
		{"grpc deadline", p(RetryGRPCDeadlineExceeded), 200, 4, false, true},
		{"grpc exhausted", p(RetryGRPCResourceExhausted), 200, 8, false, true},
		{"grpc internal", p(RetryGRPCInternal), 200, 13, false, true},
	} {
		if got := tc.p.RetriableStatus(tc.status, tc.grpc, tc.rateLimited); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		on   RetryOn
		kind ResetKind
		want bool
	}{
		{Retry5xx, ResetStream, true}, {Retry5xx, ResetConnectFailure, true}, {Retry5xx, ResetRefusedStream, true},
		{RetryGatewayError, ResetStream, true}, {RetryReset, ResetConnectFailure, true},
		{RetryConnectFailure, ResetConnectFailure, true}, {RetryConnectFailure, ResetStream, false},
		{RetryRefusedStream, ResetRefusedStream, true}, {RetryRefusedStream, ResetStream, false},
		{RetryStatusCodes, ResetStream, false},
		{Retry5xx | RetryReset | RetryConnectFailure, ResetOverflow, false},
	} {
		if got := p(tc.on).RetriableReset(tc.kind); got != tc.want {
			t.Errorf("on %b reset %d: %v, want %v", tc.on, tc.kind, got, tc.want)
		}
	}
}

// TestRetryBackoff checks Envoy's documented back-off: for a 25 ms base
// the first retry waits 0-24 ms, the second 0-74 ms, the third 0-174 ms,
// never more than the maximum interval.
func TestRetryBackoff(t *testing.T) {
	p := &RetryPolicy{BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond}
	top := func(max uint64) uint64 { return max - 1 }
	for n, want := range map[int]time.Duration{1: 24 * time.Millisecond, 2: 74 * time.Millisecond, 3: 174 * time.Millisecond,
		4: 250 * time.Millisecond, 60: 250 * time.Millisecond, 1000: 250 * time.Millisecond} {
		if got := p.Backoff(n, top); got != want {
			t.Errorf("retry %d: longest back-off %v, want %v", n, got, want)
		}
		if got := p.Backoff(n, func(uint64) uint64 { return 0 }); got != 0 {
			t.Errorf("retry %d: shortest back-off %v, want 0", n, got)
		}
	}
}
