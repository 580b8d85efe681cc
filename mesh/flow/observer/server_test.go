package observer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nodemesh/nodemesh/mesh/flow"
	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
	observerpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/observer"
)

// serve starts the observer on a Unix socket and returns a client.
func serve(t *testing.T, store *flow.Store) (observerpb.ObserverClient, *grpc.ClientConn) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hubble.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(store, WithNodeName("node-1")).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return observerpb.NewObserverClient(conn), conn
}

var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

func httpFlow(i int, verdict, src, dst, method, path string, code int) flow.Flow {
	return flow.Flow{
		Time: t0.Add(time.Duration(i) * time.Second), Direction: "ingress", Protocol: flow.ProtocolHTTP, Verdict: verdict,
		Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.1:40000"), Identity: 256, Workload: src},
		Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.2:80"), Identity: 257, Workload: dst},
		HTTP:        &flow.HTTP{Method: method, Authority: "deathstar", Path: path, Status: code, Version: "HTTP/1.1"},
	}
}

// scenario is the Star Wars demo's flows: two landings, the denied
// exhaust port, an L3/L4 drop of the xwing and a Kafka produce.
func scenario() *flow.Store {
	s := labelled{flow.NewStore()}
	s.Add(httpFlow(0, flow.Forwarded, "default/tiefighter", "default/deathstar-1", "POST", "/v1/request-landing", 200))
	s.Add(httpFlow(1, flow.Forwarded, "default/tiefighter", "default/deathstar-2", "POST", "/v1/request-landing", 200))
	s.Add(httpFlow(2, flow.Dropped, "default/tiefighter", "default/deathstar-1", "PUT", "/v1/exhaust-port", 403))
	s.Add(flow.Flow{Time: t0.Add(3 * time.Second), Direction: "ingress", Protocol: flow.ProtocolTCP, Verdict: flow.Dropped,
		Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.3:41000"), Identity: 258, Workload: "default/xwing"},
		Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.2:80"), Identity: 257, Workload: "default/deathstar-1"},
		Datapath:    &flow.Datapath{Event: flow.EventDrop, Reason: 2}})
	s.Add(flow.Flow{Time: t0.Add(4 * time.Second), Direction: "egress", Protocol: flow.ProtocolKafka, Verdict: flow.Forwarded,
		Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.4:42000"), Identity: 300, Workload: "kafka/producer"},
		Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.5:9092"), Identity: 301, Workload: "kafka/broker"},
		Kafka:       &flow.Kafka{APIKeyName: "Produce", APIVersion: 9, Topics: []string{"plans"}}})
	return s.Store
}

// labelled adds flows with the labels of the scenario's identities, as
// the agent's resolver records them.
type labelled struct{ *flow.Store }

var scenarioLabels = map[uint32][]string{
	256: {"k8s:class=tiefighter", "k8s:io.kubernetes.pod.namespace=default", "k8s:org=empire"},
	257: {"k8s:class=deathstar", "k8s:io.kubernetes.pod.namespace=default", "k8s:org=empire"},
	258: {"k8s:class=xwing", "k8s:io.kubernetes.pod.namespace=default", "k8s:org=alliance"},
	300: {"k8s:app=producer", "k8s:io.kubernetes.pod.namespace=kafka"},
	301: {"k8s:app=broker", "k8s:io.kubernetes.pod.namespace=kafka", "k8s:org=empire"},
}

func (s labelled) Add(f flow.Flow) {
	f.Source.Labels, f.Destination.Labels = scenarioLabels[f.Source.Identity], scenarioLabels[f.Destination.Identity]
	s.Store.Add(f)
}

// collect reads a non-following GetFlows to its end and returns the
// flows' summaries (L7) or drop reasons (L3/L4).
func collect(t *testing.T, c observerpb.ObserverClient, req *observerpb.GetFlowsRequest) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.GetFlows(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		f := resp.GetFlow()
		if resp.GetNodeName() != "node-1" || f.GetNodeName() != "node-1" {
			t.Errorf("node name %q / %q", resp.GetNodeName(), f.GetNodeName())
		}
		if f.GetType() == flowpb.FlowType_L7 {
			out = append(out, f.GetSummary())
		} else {
			out = append(out, f.GetSource().GetPodName()+" "+f.GetDropReasonDesc().String())
		}
	}
}

func TestGetFlows(t *testing.T) {
	c, _ := serve(t, scenario())
	landing, exhaust, xwing, produce := "POST /v1/request-landing 200", "PUT /v1/exhaust-port 403", "xwing POLICY_DENIED", "Produce v9 [plans]"
	wl := func(f ...*flowpb.FlowFilter) []*flowpb.FlowFilter { return f }
	for _, tc := range []struct {
		name string
		req  *observerpb.GetFlowsRequest
		want []string
	}{
		{"all", &observerpb.GetFlowsRequest{}, []string{landing, landing, exhaust, xwing, produce}},
		{"last 2", &observerpb.GetFlowsRequest{Number: 2}, []string{xwing, produce}},
		{"first 2", &observerpb.GetFlowsRequest{Number: 2, First: true}, []string{landing, landing}},
		{"dropped", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}})},
			[]string{exhaust, xwing}},
		{"dropped http", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}, Protocol: []string{"http"}})},
			[]string{exhaust}},
		{"pod either side", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourcePod: []string{"default/xwing"}}, &flowpb.FlowFilter{DestinationPod: []string{"default/xwing"}})},
			[]string{xwing}},
		{"pod prefix, namespace default", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{DestinationPod: []string{"deathstar-2"}})},
			[]string{landing}},
		{"namespace", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourcePod: []string{"kafka/"}})}, []string{produce}},
		{"identity", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourceIdentity: []uint32{258, 300}})}, []string{xwing, produce}},
		{"ip prefix", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{DestinationIp: []string{"10.0.0.4/30"}})}, []string{produce}},
		{"port", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{DestinationPort: []string{"9092"}})}, []string{produce}},
		{"http status prefix", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{HttpStatusCode: []string{"4+"}})}, []string{exhaust}},
		{"http method and path", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{HttpMethod: []string{"post"}, HttpPath: []string{"^/v1/request-.*"}})},
			[]string{landing, landing}},
		{"drop reason", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{DropReasonDesc: []flowpb.DropReason{flowpb.DropReason_POLICY_DENIED}})}, []string{xwing}},
		{"event type drop", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 1}}})}, []string{xwing}},
		{"kafka", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{Protocol: []string{"kafka"}})}, []string{produce}},
		{"egress", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{TrafficDirection: []flowpb.TrafficDirection{flowpb.TrafficDirection_EGRESS}})}, []string{produce}},
		{"blacklist", &observerpb.GetFlowsRequest{Blacklist: wl(&flowpb.FlowFilter{Protocol: []string{"http"}})}, []string{xwing, produce}},
		{"since until", &observerpb.GetFlowsRequest{Since: timestamppb.New(t0.Add(time.Second)), Until: timestamppb.New(t0.Add(3 * time.Second))},
			[]string{landing, exhaust, xwing}},
		{"not a reply", &observerpb.GetFlowsRequest{Number: 1, Whitelist: wl(&flowpb.FlowFilter{Reply: []bool{false}})}, []string{produce}},
		{"reply", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{Reply: []bool{true}})}, nil},
		{"label either side", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"org=alliance"}}, &flowpb.FlowFilter{DestinationLabel: []string{"org=alliance"}})},
			[]string{xwing}},
		{"from label with source", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"k8s:class=tiefighter"}})},
			[]string{landing, landing, exhaust}},
		{"other source", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"reserved:class=tiefighter"}})}, nil},
		{"from and to", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"org"}, DestinationLabel: []string{"class in (deathstar, broker),org==empire"}})},
			[]string{landing, landing, exhaust, xwing}},
		{"not in", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"org notin (empire)"}})}, []string{xwing, produce}},
		{"not equal, any selector", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{SourceLabel: []string{"any:org!=empire,!class", "class=xwing"}})},
			[]string{xwing, produce}},
		{"label blacklist", &observerpb.GetFlowsRequest{Blacklist: wl(&flowpb.FlowFilter{DestinationLabel: []string{"k8s:io.kubernetes.pod.namespace=default"}})},
			[]string{produce}},
		{"node name", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{NodeName: []string{"cluster/node-*"}})}, []string{landing, landing, exhaust, xwing, produce}},
		{"other node", &observerpb.GetFlowsRequest{Whitelist: wl(&flowpb.FlowFilter{NodeName: []string{"node-2"}})}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collect(t, c, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestGetFlowsRefusesWhatItCannotEvaluate: filters on fields the observer
// does not record, malformed values and oversized requests are refused
// with InvalidArgument, never answered as if the filter were absent.
func TestGetFlowsRefusesWhatItCannotEvaluate(t *testing.T) {
	c, _ := serve(t, scenario())
	many := make([]*flowpb.FlowFilter, maxFilters+1)
	for i := range many {
		many[i] = &flowpb.FlowFilter{}
	}
	for name, req := range map[string]*observerpb.GetFlowsRequest{
		"bad label":    {Whitelist: []*flowpb.FlowFilter{{SourceLabel: []string{"app=x y"}}}},
		"label gt":     {Whitelist: []*flowpb.FlowFilter{{SourceLabel: []string{"replicas gt 2"}}}},
		"label parens": {Whitelist: []*flowpb.FlowFilter{{DestinationLabel: []string{"app in (a,b"}}}},
		"empty label":  {Whitelist: []*flowpb.FlowFilter{{DestinationLabel: []string{""}}}},
		"label key":    {Whitelist: []*flowpb.FlowFilter{{DestinationLabel: []string{"k8s:=x"}}}},
		"service":      {Whitelist: []*flowpb.FlowFilter{{SourceService: []string{"default/deathstar"}}}},
		"fqdn":         {Blacklist: []*flowpb.FlowFilter{{DestinationFqdn: []string{"*.example"}}}},
		"bad ip":       {Whitelist: []*flowpb.FlowFilter{{SourceIp: []string{"10.0.0.300"}}}},
		"bad status":   {Whitelist: []*flowpb.FlowFilter{{HttpStatusCode: []string{"4xx"}}}},
		"bad regexp":   {Whitelist: []*flowpb.FlowFilter{{HttpPath: []string{"("}}}},
		"bad protocol": {Whitelist: []*flowpb.FlowFilter{{Protocol: []string{"carrier-pigeon"}}}},
		"bad port":     {Whitelist: []*flowpb.FlowFilter{{DestinationPort: []string{"70000"}}}},
		"bad mask":     {FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"no_such_field"}}},
		"first+follow": {First: true, Follow: true},
		"too many":     {Whitelist: many},
	} {
		_, err := collect(t, c, req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

// TestFieldMask: only the masked fields come back.
func TestFieldMask(t *testing.T) {
	c, _ := serve(t, scenario())
	st, err := c.GetFlows(context.Background(), &observerpb.GetFlowsRequest{Number: 1,
		FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"verdict", "source.pod_name", "l7.kafka.topic"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	f := resp.GetFlow()
	if f.GetVerdict() != flowpb.Verdict_FORWARDED || f.GetSource().GetPodName() != "producer" || f.GetL7().GetKafka().GetTopic() != "plans" ||
		f.GetSource().GetIdentity() != 0 || f.GetIP() != nil || f.GetL7().GetKafka().GetApiKey() != "" || f.GetTime() != nil {
		t.Fatalf("masked flow: %v", f)
	}
}

// TestFollowLosesNothingSilently: a follower that does not read while the
// proxy adds far more flows than the store holds never holds up Add; when
// it reads again it gets LostEvents, and every flow added after it
// subscribed is either delivered or counted lost.
func TestFollowLosesNothingSilently(t *testing.T) {
	const capacity, total = 64, 20000
	store := flow.NewStore(flow.WithCapacity(capacity))
	c, _ := serve(t, store)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first flow, read through since (so it does not matter whether
	// the server saw the request before or after the Add), proves the
	// stream is open before the flood.
	store.Add(httpFlow(0, flow.Forwarded, "default/a", "default/b", "GET", "/0", 200))
	st, err := c.GetFlows(ctx, &observerpb.GetFlowsRequest{Follow: true, Since: timestamppb.New(t0.Add(-time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil || first.GetFlow() == nil {
		t.Fatalf("first flow: %v, %v", first, err)
	}
	added := make(chan struct{})
	go func() {
		defer close(added)
		for i := 1; i <= total; i++ {
			store.Add(httpFlow(i, flow.Forwarded, "default/a", "default/b", "GET", "/x", 200))
		}
		store.Add(httpFlow(total+1, flow.Dropped, "default/a", "default/b", "GET", "/end", 403))
	}()
	select {
	case <-added:
	case <-time.After(30 * time.Second):
		t.Fatal("Add blocked behind a follower that does not read")
	}
	var flows, lost uint64
	for {
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if l := resp.GetLostEvents(); l != nil {
			if l.GetSource() != flowpb.LostEventSource_HUBBLE_RING_BUFFER {
				t.Errorf("lost event source %s", l.GetSource())
			}
			lost += l.GetNumEventsLost()
			continue
		}
		flows++
		if resp.GetFlow().GetVerdict() == flowpb.Verdict_DROPPED {
			break
		}
	}
	if lost == 0 {
		t.Fatalf("%d flows through a ring of %d without a LostEvent", total, capacity)
	}
	if flows+lost != total+1 {
		t.Fatalf("delivered %d + lost %d = %d, want %d", flows, lost, flows+lost, total+1)
	}
}

func TestStatusNodesHealth(t *testing.T) {
	c, conn := serve(t, scenario())
	ctx := context.Background()
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: HealthService})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", hc, err)
	}
	ss, err := c.ServerStatus(ctx, &observerpb.ServerStatusRequest{})
	if err != nil || ss.GetNumFlows() != 5 || ss.GetSeenFlows() != 5 || ss.GetMaxFlows() != flow.DefaultCapacity || ss.GetUptimeNs() == 0 {
		t.Fatalf("ServerStatus: %v, %v", ss, err)
	}
	nodes, err := c.GetNodes(ctx, &observerpb.GetNodesRequest{})
	if err != nil || len(nodes.GetNodes()) != 1 || nodes.GetNodes()[0].GetName() != "node-1" || nodes.GetNodes()[0].GetNumFlows() != 5 {
		t.Fatalf("GetNodes: %v, %v", nodes, err)
	}
}
