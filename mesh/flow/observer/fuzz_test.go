package observer

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nodemesh/nodemesh/mesh/flow"
	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
	observerpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/observer"
)

// fuzzFlows are the scenario's flows with their labels, plus a flow with
// no workload, labels or L7 record, to evaluate compiled filters on.
func fuzzFlows() []flow.Flow {
	fs := []flow.Flow{
		httpFlow(0, flow.Forwarded, "default/tiefighter", "default/deathstar-1", "POST", "/v1/request-landing", 200),
		httpFlow(2, flow.Dropped, "default/tiefighter", "default/deathstar-2", "PUT", "/v1/exhaust-port", 403),
		{Time: t0.Add(3 * time.Second), Direction: "ingress", Protocol: flow.ProtocolTCP, Verdict: flow.Dropped,
			Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.3:41000"), Identity: 258, Workload: "default/xwing"},
			Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.2:80"), Identity: 257, Workload: "default/deathstar-1"},
			Datapath:    &flow.Datapath{Event: flow.EventDrop, Reason: 2}},
		{Time: t0.Add(4 * time.Second), Direction: "egress", Protocol: flow.ProtocolKafka, Verdict: flow.Forwarded,
			Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.4:42000"), Identity: 300, Workload: "kafka/producer"},
			Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.5:9092"), Identity: 301, Workload: "kafka/broker"},
			Kafka:       &flow.Kafka{APIKeyName: "Produce", APIVersion: 9, Topics: []string{"plans"}}},
		{Time: t0.Add(5 * time.Second), Protocol: flow.ProtocolTCP, Verdict: flow.Forwarded,
			Source:      flow.Endpoint{Address: netip.MustParseAddrPort("[fd00::1]:1")},
			Destination: flow.Endpoint{Address: netip.MustParseAddrPort("[fd00::2]:2")}},
	}
	for i := range fs {
		fs[i].Source.Labels, fs[i].Destination.Labels = scenarioLabels[fs[i].Source.Identity], scenarioLabels[fs[i].Destination.Identity]
	}
	return fs
}

// FuzzGetFlowsRequest feeds GetFlowsRequest wire bytes, as any client of
// the Hubble socket can send them, to the request parser and evaluates an
// accepted request on every fuzz flow. Properties: parsing never panics;
// what it accepts respects the documented bounds (filters per list,
// field-mask paths, first and follow exclusive); a list matches a flow
// exactly when one of its filters does on its own; and a field mask is
// idempotent.
func FuzzGetFlowsRequest(f *testing.F) {
	wl := func(fs ...*flowpb.FlowFilter) []*flowpb.FlowFilter { return fs }
	for _, req := range []*observerpb.GetFlowsRequest{
		{},
		{Number: 3, Follow: true, Since: timestamppb.New(t0)},
		{First: true, Until: timestamppb.New(t0.Add(time.Hour))},
		{Whitelist: wl(&flowpb.FlowFilter{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}, Protocol: []string{"http"}})},
		{Whitelist: wl(&flowpb.FlowFilter{SourcePod: []string{"default/xwing"}}, &flowpb.FlowFilter{DestinationPod: []string{"deathstar-2"}})},
		{Whitelist: wl(&flowpb.FlowFilter{SourceIdentity: []uint32{258, 300}, DestinationIp: []string{"10.0.0.4/30", "fd00::2"}})},
		{Whitelist: wl(&flowpb.FlowFilter{DestinationPort: []string{"9092"}, SourcePort: []string{"40000"}})},
		{Whitelist: wl(&flowpb.FlowFilter{HttpStatusCode: []string{"4+", "200"}, HttpMethod: []string{"post"}, HttpPath: []string{"^/v1/request-.*"}})},
		{Whitelist: wl(&flowpb.FlowFilter{DropReasonDesc: []flowpb.DropReason{flowpb.DropReason_POLICY_DENIED}, EventType: []*flowpb.EventTypeFilter{{Type: 1, MatchSubType: true}}})},
		{Whitelist: wl(&flowpb.FlowFilter{TrafficDirection: []flowpb.TrafficDirection{flowpb.TrafficDirection_EGRESS}, Reply: []bool{false}})},
		{Blacklist: wl(&flowpb.FlowFilter{Protocol: []string{"kafka", "icmp", "dns"}})},
		{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"org"}, DestinationLabel: []string{"class in (deathstar, broker),org==empire"}})},
		{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"any:org!=empire,!class", "k8s:class=xwing", "org notin (empire)"}})},
		{Whitelist: wl(&flowpb.FlowFilter{NodeName: []string{"cluster/node-*", "node-[12]"}})},
		{FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"time", "source.labels", "l7.http.code", "verdict"}}},
		{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"app=x y"}})},
		{Whitelist: wl(&flowpb.FlowFilter{HttpPath: []string{"("}})},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	flows := fuzzFlows()
	s := New(flow.NewStore())
	f.Fuzz(func(t *testing.T, b []byte) {
		req := &observerpb.GetFlowsRequest{}
		if proto.Unmarshal(b, req) != nil {
			return
		}
		r, err := s.parse(req)
		if err != nil {
			return
		}
		if len(req.Whitelist) > maxFilters || len(req.Blacklist) > maxFilters {
			t.Fatalf("accepted %d/%d filters, at most %d", len(req.Whitelist), len(req.Blacklist), maxFilters)
		}
		if len(req.GetFieldMask().GetPaths()) > maxMaskPaths {
			t.Fatalf("accepted a mask of %d paths", len(req.FieldMask.Paths))
		}
		if req.First && req.Follow {
			t.Fatal("accepted first and follow")
		}
		for i := range flows {
			p := Proto(&flows[i], "cluster/node-1")
			for _, l := range [][]*flowpb.FlowFilter{req.Whitelist, req.Blacklist} {
				if len(l) == 0 {
					continue
				}
				whole, err := compileList(l)
				if err != nil {
					t.Fatalf("list accepted by parse, refused alone: %v", err)
				}
				one := slices.ContainsFunc(l, func(ff *flowpb.FlowFilter) bool {
					m, err := compile(ff)
					if err != nil {
						t.Fatalf("filter accepted in its list, refused alone: %v", err)
					}
					return m(p)
				})
				if whole(p) != one {
					t.Fatalf("flow %d: list matches %v, its filters one by one %v", i, whole(p), one)
				}
			}
			kept, ok := r.keep(&flows[i], "cluster/node-1")
			if !ok {
				continue
			}
			masked := r.mask.apply(kept)
			if !proto.Equal(masked, r.mask.apply(masked)) {
				t.Fatalf("field mask %v is not idempotent on flow %d", r.mask, i)
			}
		}
	})
}

// render writes requirements back in the selector syntax, each key with
// its source.
func render(reqs []requirement) string {
	var parts []string
	for _, r := range reqs {
		k := r.source + ":" + r.key
		switch r.op {
		case "exists":
			parts = append(parts, k)
		case "!":
			parts = append(parts, "!"+k)
		case "=", "!=":
			parts = append(parts, k+r.op+r.values[0])
		default:
			parts = append(parts, k+" "+r.op+" ("+strings.Join(r.values, ",")+")")
		}
	}
	return strings.Join(parts, ",")
}

// FuzzParseSelector parses label selectors as hubble's --label flags send
// them. Properties: an accepted selector is bounded (pattern size, values
// per set), every key and value passes the same validation, and writing
// the parsed requirements back and parsing again gives the same
// requirements, so what is evaluated is what the text says.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{
		"org", "!class", "k8s:class=tiefighter", "org==empire", "any:org!=empire,!class",
		"class in (deathstar, broker),org==empire", "org notin (empire)", "reserved:world",
		"app in ()", "app=x y", "replicas gt 2", "app in (a,b", "k8s:=x", "a,(b),c", "k8s:k8s:app",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		reqs, err := parseSelector(s)
		if err != nil {
			return
		}
		if len(s) > maxPatternSize {
			t.Fatalf("accepted a selector of %d bytes", len(s))
		}
		for _, r := range reqs {
			if len(r.values) > maxValues {
				t.Fatalf("accepted %d values", len(r.values))
			}
			if r.key == "" || !labelKey.MatchString(r.source+":"+r.key) {
				t.Fatalf("accepted key %q (source %q)", r.key, r.source)
			}
			for _, v := range r.values {
				if !labelValue.MatchString(v) {
					t.Fatalf("accepted value %q", v)
				}
			}
		}
		text := render(reqs)
		if len(text) > maxPatternSize {
			return // the added sources made it longer than a request may be
		}
		again, err := parseSelector(text)
		if err != nil {
			t.Fatalf("%q parsed, its rendering %q does not: %v", s, text, err)
		}
		if !slices.EqualFunc(reqs, again, func(a, b requirement) bool {
			return a.source == b.source && a.key == b.key && a.op == b.op && slices.Equal(a.values, b.values)
		}) {
			t.Fatalf("%q: %+v, rendered %q: %+v", s, reqs, text, again)
		}
	})
}
