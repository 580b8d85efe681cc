package headermatch_test

import (
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"

	headermatchv1 "github.com/nodemesh/nodemesh/proxylib/api/headermatch/v1"
	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/headermatch"
	"github.com/nodemesh/nodemesh/proxylib/rbac"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
)

// engine decodes cfg the way the proxy does (an ECDS resource) and
// compiles it.
func engine(t *testing.T, cfg *headermatchv1.HeaderMatchPolicy) *headermatch.Engine {
	t.Helper()
	tc, err := anypb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&corev3.TypedExtensionConfig{Name: "policy/ingress/http/header-match", TypedConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := resource.DecodeExtension(a)
	if err != nil {
		t.Fatalf("the proxy rejects the configuration: %v", err)
	}
	return headermatch.New(ext.HeaderMatch)
}

var (
	api = netip.MustParseAddrPort("10.0.0.1:80")
	web = netip.MustParseAddrPort("10.0.0.2:40000")
)

func rule(name string, matches ...*headermatchv1.HeaderMatch) *headermatchv1.HeaderMatchRule {
	return &headermatchv1.HeaderMatchRule{
		Name:            name,
		Destinations:    []*headermatchv1.AddressTerm{{Prefix: "10.0.0.1/32"}},
		DestinationPort: 80,
		Sources:         []*headermatchv1.AddressTerm{{Prefix: "10.0.0.0/24", Except: []string{"10.0.0.9"}}},
		HeaderMatches:   matches,
	}
}

func hm(name, value string, a headermatchv1.MismatchAction) *headermatchv1.HeaderMatch {
	return &headermatchv1.HeaderMatch{Name: name, Value: value, MismatchAction: a}
}

// run applies e to a request with the given headers ("name: value" each)
// and returns the headers as forwarded and the records.
func run(e *headermatch.Engine, local, remote netip.AddrPort, method, path string, fields ...string) (string, []string) {
	req := &route.Request{Method: []byte(method), Path: []byte(path), Authority: []byte("api")}
	for _, f := range fields {
		n, v, _ := strings.Cut(f, ": ")
		req.Headers = append(req.Headers, header.Field{Name: []byte(n), Value: []byte(v)})
	}
	var recs []string
	e.Apply(&rbac.Input{Req: req, Local: local, Remote: remote}, &req.Headers, func(r headermatch.Record) {
		kind := "rejected"
		if r.Missing {
			kind = "missing"
		}
		recs = append(recs, kind+" "+r.Name+": "+r.Value)
	})
	var out []string
	for _, f := range req.Headers {
		out = append(out, string(f.Name)+": "+string(f.Value))
	}
	return strings.Join(out, "\n"), recs
}

// TestMismatchActions: each action with Cilium's semantics, on a match
// and on a mismatch.
func TestMismatchActions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		match   *headermatchv1.HeaderMatch
		in      []string
		out     string
		records []string
	}{
		{"log missing", hm("x-ship", "tie", headermatchv1.MismatchAction_LOG), []string{"accept: */*"}, "accept: */*", []string{"missing x-ship: tie"}},
		{"log wrong value", hm("x-ship", "tie", headermatchv1.MismatchAction_LOG), []string{"x-ship: xwing"}, "x-ship: xwing", []string{"missing x-ship: tie"}},
		{"log match", hm("x-ship", "tie", headermatchv1.MismatchAction_LOG), []string{"x-ship: tie"}, "x-ship: tie", nil},
		{"log presence", hm("x-ship", "", headermatchv1.MismatchAction_LOG), []string{"x-ship: anything"}, "x-ship: anything", nil},
		{"add missing", hm("x-ship", "tie", headermatchv1.MismatchAction_ADD), nil, "x-ship: tie", []string{"missing x-ship: tie"}},
		{"add beside a wrong value", hm("x-ship", "tie", headermatchv1.MismatchAction_ADD), []string{"x-ship: xwing"}, "x-ship: xwing\nx-ship: tie", []string{"missing x-ship: tie"}},
		{"add match", hm("x-ship", "tie", headermatchv1.MismatchAction_ADD), []string{"x-ship: tie"}, "x-ship: tie", nil},
		{"delete wrong value", hm("x-ship", "tie", headermatchv1.MismatchAction_DELETE), []string{"x-ship: xwing", "accept: */*", "x-ship: ywing"},
			"accept: */*", []string{"rejected x-ship: xwing,ywing"}},
		{"delete missing", hm("x-ship", "tie", headermatchv1.MismatchAction_DELETE), []string{"accept: */*"}, "accept: */*", nil},
		{"delete presence", hm("x-ship", "", headermatchv1.MismatchAction_DELETE), []string{"accept: */*"}, "accept: */*", nil},
		{"delete match", hm("x-ship", "tie", headermatchv1.MismatchAction_DELETE), []string{"x-ship: tie"}, "x-ship: tie", nil},
		{"replace wrong value", hm("x-ship", "tie", headermatchv1.MismatchAction_REPLACE), []string{"x-ship: xwing", "x-ship: ywing"}, "x-ship: tie",
			[]string{"rejected x-ship: xwing,ywing", "missing x-ship: tie"}},
		{"replace missing", hm("x-ship", "tie", headermatchv1.MismatchAction_REPLACE), nil, "x-ship: tie", []string{"missing x-ship: tie"}},
		{"replace match", hm("x-ship", "tie", headermatchv1.MismatchAction_REPLACE), []string{"x-ship: tie"}, "x-ship: tie", nil},
		{"repeated header joined", hm("x-ship", "tie,tie", headermatchv1.MismatchAction_REPLACE), []string{"x-ship: tie", "x-ship: tie"}, "x-ship: tie\nx-ship: tie", nil},
		{"secret redacted", &headermatchv1.HeaderMatch{Name: "authorization", Value: "s3cret", MismatchAction: headermatchv1.MismatchAction_REPLACE, Redact: true},
			[]string{"authorization: guess"}, "authorization: s3cret", []string{"rejected authorization: [redacted]", "missing authorization: [redacted]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := engine(t, &headermatchv1.HeaderMatchPolicy{Rules: []*headermatchv1.HeaderMatchRule{rule("r", tc.match)}})
			out, recs := run(e, api, web, "GET", "/", tc.in...)
			if out != tc.out {
				t.Errorf("headers:\n%s\nwant:\n%s", out, tc.out)
			}
			if diff := cmp.Diff(tc.records, recs); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRulesApply: a rule acts only on the requests its scope matches
// (destination, port, source with exceptions, method, path, authority,
// required headers); every applying rule acts, in order, each seeing the
// previous edits.
func TestRulesApply(t *testing.T) {
	scoped := rule("a-scoped", hm("x-seen", "a", headermatchv1.MismatchAction_ADD))
	scoped.Method, scoped.Path = "GET", "/v1/.*"
	scoped.Headers = []*headermatchv1.HeaderRequirement{{Name: "X-Fleet", Value: "empire"}}
	// b sees what a added: x-seen is present, so nothing is added twice,
	// and c replaces the value a added.
	second := rule("b-second", hm("x-seen", "", headermatchv1.MismatchAction_ADD))
	third := rule("c-third", hm("x-seen", "c", headermatchv1.MismatchAction_REPLACE))
	e := engine(t, &headermatchv1.HeaderMatchPolicy{Rules: []*headermatchv1.HeaderMatchRule{scoped, second, third}})

	out, recs := run(e, api, web, "GET", "/v1/x?q=1", "x-fleet: empire")
	if out != "x-fleet: empire\nx-seen: c" || len(recs) != 3 {
		t.Errorf("all rules: %q %q", out, recs)
	}
	for _, tc := range []struct {
		name          string
		local, remote netip.AddrPort
		method, path  string
		fields        []string
	}{
		{"other method", api, web, "POST", "/v1/x", []string{"x-fleet: empire"}},
		{"other path", api, web, "GET", "/v2/x", []string{"x-fleet: empire"}},
		{"header missing", api, web, "GET", "/v1/x", nil},
		{"header value", api, web, "GET", "/v1/x", []string{"x-fleet: rebels"}},
	} {
		out, _ := run(e, tc.local, tc.remote, tc.method, tc.path, tc.fields...)
		if strings.Contains(out, "x-seen: a") || !strings.Contains(out, "x-seen: c") {
			t.Errorf("%s: only the unscoped rules act, got %q", tc.name, out)
		}
	}
	for _, tc := range []struct {
		name          string
		local, remote netip.AddrPort
	}{
		{"other destination", netip.MustParseAddrPort("10.0.0.3:80"), web},
		{"other port", netip.MustParseAddrPort("10.0.0.1:81"), web},
		{"excepted source", api, netip.MustParseAddrPort("10.0.0.9:5000")},
		{"other source", api, netip.MustParseAddrPort("192.0.2.1:5000")},
	} {
		out, recs := run(e, tc.local, tc.remote, "GET", "/v1/x", "x-fleet: empire")
		if out != "x-fleet: empire" || recs != nil {
			t.Errorf("%s: no rule applies, got %q %q", tc.name, out, recs)
		}
	}
}

// TestProxyRejects: configurations the proxy NACKs, naming the field.
func TestProxyRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*headermatchv1.HeaderMatchRule)
		want   string
	}{
		{"no action", func(r *headermatchv1.HeaderMatchRule) { r.HeaderMatches[0].MismatchAction = 0 }, "rules[0].header_matches[0].mismatch_action"},
		{"host", func(r *headermatchv1.HeaderMatchRule) { r.HeaderMatches[0].Name = "Host" }, `rules[0].header_matches[0].name: "Host" may not be edited`},
		{"framing", func(r *headermatchv1.HeaderMatchRule) { r.HeaderMatches[0].Name = "transfer-encoding" }, `"transfer-encoding" may not be edited`},
		{"value", func(r *headermatchv1.HeaderMatchRule) { r.HeaderMatches[0].Value = "a\r\nx-evil: 1" }, "rules[0].header_matches[0].value: control characters"},
		{"no sources", func(r *headermatchv1.HeaderMatchRule) { r.Sources = nil }, "rules[0].sources: at least one"},
		{"regex", func(r *headermatchv1.HeaderMatchRule) { r.Path = "/v1/(" }, "rules[0].path:"},
		{"port", func(r *headermatchv1.HeaderMatchRule) { r.DestinationPort = 0 }, "rules[0].destination_port"},
		{"except", func(r *headermatchv1.HeaderMatchRule) { r.Sources[0].Except = []string{"10.1.0.0/16"} }, "rules[0].sources[0].except[0]: 10.1.0.0/16 is not inside 10.0.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rule("r", hm("x-ship", "tie", headermatchv1.MismatchAction_ADD))
			tc.modify(r)
			tcfg, _ := anypb.New(&headermatchv1.HeaderMatchPolicy{Rules: []*headermatchv1.HeaderMatchRule{r}})
			a, _ := anypb.New(&corev3.TypedExtensionConfig{Name: "x", TypedConfig: tcfg})
			if _, err := resource.DecodeExtension(a); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
