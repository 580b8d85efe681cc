package translator

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// fastValidFields is every field, by proto name, of each message
// validRoute checks by hand (fastvalid.go names each one, with its rules
// or why it has none). A field go-control-plane adds fails
// TestFastValidKnowsEveryField until fastvalid.go handles it.
var fastValidFields = map[protoreflect.FullName][]string{
	"envoy.config.route.v3.Route": {"name", "match", "route", "redirect", "direct_response",
		"filter_action", "non_forwarding_action", "metadata", "decorator", "typed_per_filter_config",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
		"response_headers_to_remove", "tracing", "per_request_buffer_limit_bytes", "stat_prefix",
		"request_body_buffer_limit", "route_specifiers"},
	"envoy.config.route.v3.RouteMatch": {"prefix", "path", "safe_regex", "connect_matcher",
		"path_separated_prefix", "path_match_policy", "case_sensitive", "runtime_fraction", "headers",
		"query_parameters", "grpc", "tls_context", "dynamic_metadata", "filter_state", "cookies"},
	"envoy.config.route.v3.RouteAction": {"cluster", "cluster_header", "weighted_clusters",
		"cluster_specifier_plugin", "inline_cluster_specifier_plugin", "cluster_not_found_response_code",
		"metadata_match", "prefix_rewrite", "regex_rewrite", "path_rewrite_policy", "path_rewrite",
		"host_rewrite_literal", "auto_host_rewrite", "host_rewrite_header", "host_rewrite_path_regex",
		"host_rewrite", "append_x_forwarded_host", "timeout", "idle_timeout", "flush_timeout",
		"early_data_policy", "retry_policy", "retry_policy_typed_config", "request_mirror_policies",
		"priority", "rate_limits", "include_vh_rate_limits", "hash_policy", "cors", "max_grpc_timeout",
		"grpc_timeout_offset", "upgrade_configs", "internal_redirect_policy", "internal_redirect_action",
		"max_internal_redirects", "hedge_policy", "max_stream_duration"},
	"envoy.config.route.v3.WeightedCluster": {"clusters", "total_weight", "runtime_key_prefix",
		"header_name", "use_hash_policy"},
	"envoy.config.route.v3.WeightedCluster.ClusterWeight": {"name", "cluster_header", "weight",
		"metadata_match", "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
		"response_headers_to_remove", "typed_per_filter_config", "host_rewrite_literal"},
	"envoy.config.route.v3.HeaderMatcher": {"name", "exact_match", "safe_regex_match", "range_match",
		"present_match", "prefix_match", "suffix_match", "contains_match", "string_match", "invert_match",
		"treat_missing_header_as_empty"},
	"envoy.type.matcher.v3.StringMatcher": {"exact", "prefix", "suffix", "safe_regex", "contains",
		"custom", "ignore_case"},
	"envoy.config.core.v3.HeaderValueOption": {"header", "append", "append_action", "keep_empty_value"},
	"envoy.config.core.v3.HeaderValue":       {"key", "value", "raw_value"},
}

// TestFastValidKnowsEveryField: the messages validRoute checks by hand
// have exactly the fields it was written for.
func TestFastValidKnowsEveryField(t *testing.T) {
	for _, m := range []proto.Message{&routev3.Route{}, &routev3.RouteMatch{}, &routev3.RouteAction{},
		&routev3.WeightedCluster{}, &routev3.WeightedCluster_ClusterWeight{}, &routev3.HeaderMatcher{},
		&matcherv3.StringMatcher{}, &corev3.HeaderValueOption{}, &corev3.HeaderValue{}} {
		d := m.ProtoReflect().Descriptor()
		var got []string
		for i := range d.Fields().Len() {
			got = append(got, string(d.Fields().Get(i).Name()))
		}
		want := slices.Clone(fastValidFields[d.FullName()])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s has fields %v; fastvalid.go was written for %v", d.FullName(), got, want)
		}
	}
}

// fastValidBaseRoutes returns the routes of every golden case and of the
// benchmark's input, one per distinct set of populated fields.
func fastValidBaseRoutes(t testing.TB) []*routev3.Route {
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no inputs (%v)", err)
	}
	var cfgs []*ir.Config
	for _, in := range ins {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := decodeIR(data)
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	cfgs = append(cfgs, benchConfig(100))
	seen := map[string]bool{}
	var out []*routev3.Route
	for _, cfg := range cfgs {
		res, err := Translate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, rc := range res.RouteConfigurations {
			for _, vh := range rc.VirtualHosts {
				for _, r := range vh.Routes {
					var sig strings.Builder
					shape(&sig, r.ProtoReflect())
					if !seen[sig.String()] {
						seen[sig.String()] = true
						out = append(out, r)
					}
				}
			}
		}
	}
	return out
}

// shape writes the populated fields of m, recursively.
func shape(w *strings.Builder, m protoreflect.Message) {
	w.WriteByte('{')
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		w.WriteString(string(fd.Name()))
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				shape(w, v.List().Get(i).Message())
			}
		case fd.IsList():
			fmt.Fprintf(w, "[%d]", v.List().Len())
		case fd.IsMap():
			fmt.Fprintf(w, "<%d>", v.Map().Len())
		case fd.Message() != nil:
			shape(w, v.Message())
		}
		w.WriteByte(',')
		return true
	})
	w.WriteByte('}')
}

// TestFastValidProvesGoldenRoutes: every route of every golden case and
// of the benchmark's input is proven valid without the generated code,
// and passes it.
func TestFastValidProvesGoldenRoutes(t *testing.T) {
	routes := fastValidBaseRoutes(t)
	if len(routes) < 20 {
		t.Fatalf("only %d distinct route shapes", len(routes))
	}
	for _, r := range routes {
		if err := r.ValidateAll(); err != nil {
			t.Fatalf("route %q: %v", r.Name, err)
		}
		if !validRoute(r) {
			t.Errorf("route %q is valid but not proven so: %v", r.Name, r)
		}
	}
}

// TestCheckRoutesSkipsGeneratedCode: validating the routes of the
// benchmark's input allocates nothing (the generated code allocates on
// every Route and ClusterWeight, for the key sort of its
// typed_per_filter_config).
func TestCheckRoutesSkipsGeneratedCode(t *testing.T) {
	res, err := Translate(benchConfig(20))
	if err != nil {
		t.Fatal(err)
	}
	var routes []uncheckedRoute
	for _, rc := range res.RouteConfigurations {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				routes = append(routes, uncheckedRoute{out: r, rc: rc.Name, vhost: vh.Name})
			}
		}
	}
	if len(routes) == 0 || len(routes) >= parallelCheckMin {
		t.Fatalf("%d routes; want some, checked on one goroutine", len(routes))
	}
	b := &builder{}
	allocs := testing.AllocsPerRun(10, func() {
		b.unchecked = routes
		if err := b.checkRoutes(); err != nil {
			t.Fatal(err)
		}
	})
	// checkRoutes' own: its error slice and the closure holding it.
	if allocs > 2 {
		t.Errorf("checking %d valid routes allocates %v times; want at most 2", len(routes), allocs)
	}
}

// fastValidStrings are the strings the differential tests put in every
// string field: the bytes and lengths the rules are about.
var fastValidStrings = []string{
	"", "a", "ab", "/", "//", "/a", "/a/", "a/", "/a?b", "/a#", "?", "#", "??", "\x00", "a\x00",
	"\n", "a\nb", "\r", "x\r", "\xff", "\xff\xfe", "\xff/", "/\xff", "é", "é/", "/é", ":method",
	"x-h", "%%", " ", "\t", "\u2028", "\xc3", "a\xc3", strings.Repeat("a", 16384), strings.Repeat("a", 16385),
	strings.Repeat("é", 8192), strings.Repeat("é", 8193),
}

// mutations returns, for message m, functions each changing one field
// of m in one way: every string above, enum values in and out of range,
// an empty message, a list or map with one more element, every oneof
// case.
func mutations(m protoreflect.Message) []func() {
	var out []func()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			out = append(out, func() {
				mp := m.NewField(fd).Map()
				m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
					mp.Set(k, v)
					return true
				})
				if fd.MapValue().Message() != nil {
					mp.Set(protoreflect.ValueOfString("x-new").MapKey(), protoreflect.ValueOfMessage((&anypb.Any{}).ProtoReflect()))
				}
				m.Set(fd, protoreflect.ValueOfMap(mp))
			})
		case fd.IsList():
			var elems []protoreflect.Value
			switch {
			case fd.Message() != nil:
				elems = append(elems, protoreflect.Value{})
			case fd.Kind() == protoreflect.StringKind:
				for _, s := range fastValidStrings {
					elems = append(elems, protoreflect.ValueOfString(s))
				}
			}
			for _, e := range elems {
				out = append(out, func() {
					l, old := m.NewField(fd).List(), m.Get(fd).List()
					for i := range old.Len() {
						l.Append(old.Get(i))
					}
					if e.IsValid() {
						l.Append(e)
					} else {
						l.Append(l.NewElement())
					}
					m.Set(fd, protoreflect.ValueOfList(l))
				})
			}
			if fd.Message() != nil && m.Get(fd).List().Len() > 0 {
				out = append(out, func() { m.Set(fd, protoreflect.ValueOfList(m.NewField(fd).List())) })
			}
		case fd.Kind() == protoreflect.StringKind:
			for _, s := range fastValidStrings {
				out = append(out, func() { m.Set(fd, protoreflect.ValueOfString(s)) })
			}
		case fd.Kind() == protoreflect.BytesKind:
			for _, n := range []int{0, 1, 16384, 16385} {
				out = append(out, func() { m.Set(fd, protoreflect.ValueOfBytes(make([]byte, n))) })
			}
		case fd.Kind() == protoreflect.EnumKind:
			for _, n := range []protoreflect.EnumNumber{0, 1, 2, 3, 4, 5, 99, -1} {
				out = append(out, func() { m.Set(fd, protoreflect.ValueOfEnum(n)) })
			}
		case fd.Kind() == protoreflect.BoolKind:
			out = append(out, func() { m.Set(fd, protoreflect.ValueOfBool(!m.Get(fd).Bool())) })
		case fd.Message() != nil:
			out = append(out, func() { m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message())) })
			if m.Has(fd) {
				out = append(out, func() { m.Clear(fd) })
			}
		}
	}
	return out
}

// handled reports whether validRoute checks messages of d by hand (the
// mutations go inside those only; deeper messages are the generated
// code's own).
func handled(d protoreflect.MessageDescriptor) bool {
	_, ok := fastValidFields[d.FullName()]
	return ok
}

// walk calls f on every message of m's tree that validRoute checks by
// hand, in a fixed order.
func walk(m protoreflect.Message, f func(protoreflect.Message)) {
	if !handled(m.Descriptor()) {
		return
	}
	f(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				walk(v.List().Get(i).Message(), f)
			}
		case fd.Message() != nil && !fd.IsMap():
			walk(v.Message(), f)
		}
		return true
	})
}

// TestFastValidAgreesWithValidateAll mutates every field of every
// hand-checked message of every distinct golden route, one change at a
// time, and compares validRoute with ValidateAll: validRoute must never
// accept what ValidateAll rejects, and must accept what it accepts unless
// the change leaves the subset the translator emits (then ValidateAll
// decides, and the error is the generated code's).
func TestFastValidAgreesWithValidateAll(t *testing.T) {
	routes := fastValidBaseRoutes(t)
	var agreed, unproven, invalid int
	for _, base := range routes {
		var n int
		walk(proto.Clone(base).ProtoReflect(), func(protoreflect.Message) { n++ })
		for k := range n {
			// The k-th message of a fresh clone, and its mutations.
			probe := proto.Clone(base).(*routev3.Route)
			var target protoreflect.Message
			i := 0
			walk(probe.ProtoReflect(), func(m protoreflect.Message) {
				if i == k {
					target = m
				}
				i++
			})
			for j := range len(mutations(target)) {
				r := proto.Clone(base).(*routev3.Route)
				i = 0
				walk(r.ProtoReflect(), func(m protoreflect.Message) {
					if i == k {
						target = m
					}
					i++
				})
				mutations(target)[j]()
				err := r.ValidateAll()
				fast := validRoute(r)
				switch {
				case fast && err != nil:
					t.Fatalf("validRoute accepts a route ValidateAll rejects (%v):\n%v", err, r)
				case !fast && err == nil:
					unproven++
					if inSubset(r) {
						t.Fatalf("validRoute does not prove a valid route of the translator's subset:\n%v", r)
					}
				case err != nil:
					invalid++
				default:
					agreed++
				}
			}
		}
	}
	t.Logf("%d routes: %d mutations proven valid, %d found invalid by both, %d valid but left to ValidateAll",
		len(routes), agreed, invalid, unproven)
	if invalid == 0 || agreed == 0 {
		t.Fatal("the mutations exercise nothing")
	}
}

// inSubset reports whether r uses only oneof cases and values validRoute
// decides itself: everything else it leaves to ValidateAll on purpose.
func inSubset(r *routev3.Route) bool {
	ok := true
	walk(r.ProtoReflect(), func(m protoreflect.Message) {
		switch v := m.Interface().(type) {
		case *routev3.Route:
			switch a := v.Action.(type) {
			case *routev3.Route_Route:
				ok = ok && a.Route != nil
			case *routev3.Route_FilterAction:
				ok = false
			}
			ok = ok && v.Match != nil
		case *routev3.RouteMatch:
			switch v.PathSpecifier.(type) {
			case nil, *routev3.RouteMatch_ConnectMatcher_, *routev3.RouteMatch_PathMatchPolicy:
				ok = false
			}
		case *routev3.RouteAction:
			switch c := v.ClusterSpecifier.(type) {
			case *routev3.RouteAction_Cluster:
			case *routev3.RouteAction_WeightedClusters:
				ok = ok && c.WeightedClusters != nil
			default:
				ok = false
			}
			switch v.HostRewriteSpecifier.(type) {
			case nil, *routev3.RouteAction_HostRewriteLiteral:
			default:
				ok = false
			}
		case *routev3.WeightedCluster:
			if _, hash := v.RandomValueSpecifier.(*routev3.WeightedCluster_UseHashPolicy); hash {
				ok = false
			}
		case *matcherv3.StringMatcher:
			switch v.MatchPattern.(type) {
			case nil, *matcherv3.StringMatcher_Custom:
				ok = false
			}
		}
	})
	return ok
}

// FuzzFastValid builds routes of the translator's subset from arbitrary
// strings in the fields whose rules validRoute implements as byte loops
// and requires it to agree exactly with ValidateAll.
func FuzzFastValid(f *testing.F) {
	for _, s := range fastValidStrings {
		f.Add(uint8(0), s, "x-h", "v", "svc", "", s)
		f.Add(uint8(2), "/p"+s, s, s, s, s, "x")
		f.Add(uint8(7), s, "a", s, "c", s, s)
	}
	f.Fuzz(func(t *testing.T, kind uint8, path, name, value, cluster, rewrite, remove string) {
		m := &routev3.RouteMatch{}
		switch kind % 4 {
		case 0:
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: path}
		case 1:
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: path}
		case 2:
			m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: path}
		case 3:
			m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher(path)}
		}
		sm := &matcherv3.StringMatcher{}
		switch kind / 4 % 4 {
		case 0:
			sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: value}
		case 1:
			sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: value}
		case 2:
			sm.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: value}
		case 3:
			sm.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: value}
		}
		m.Headers = []*routev3.HeaderMatcher{{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}}
		edit := []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: name, Value: value, RawValue: []byte(rewrite)}}}
		a := &routev3.RouteAction{PrefixRewrite: rewrite}
		if kind/16%2 == 0 {
			a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: cluster}
		} else {
			a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{
					Name: cluster, ClusterHeader: rewrite, RequestHeadersToAdd: edit, RequestHeadersToRemove: []string{remove},
					HostRewriteSpecifier: &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: value},
				}},
				RandomValueSpecifier: &routev3.WeightedCluster_HeaderName{HeaderName: name},
			}}
		}
		if kind/32%2 == 1 {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: remove}
		}
		r := &routev3.Route{
			Name: name, Match: m, Action: &routev3.Route_Route{Route: a},
			ResponseHeadersToAdd: edit, ResponseHeadersToRemove: []string{remove},
		}
		if kind/64%2 == 1 {
			r.RequestHeadersToRemove = []string{name}
		}
		err := r.ValidateAll()
		if fast := validRoute(r); fast != (err == nil) {
			t.Fatalf("validRoute %v, ValidateAll %v:\n%v", fast, err, r)
		}
		if err != nil && !strings.Contains(err.Error(), "invalid ") {
			t.Fatalf("unclear error %q", err)
		}
	})
}
