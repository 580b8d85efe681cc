package kafka

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/types/known/anypb"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
	"github.com/nodemesh/nodemesh/proxylib/parser"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

var (
	client = netip.MustParseAddrPort("10.0.1.5:40000")
	broker = netip.MustParseAddrPort("10.0.0.9:9092")
)

// decodePolicy runs a policy through the proxy's ECDS decoder.
func decodePolicy(t testing.TB, p *kafkav1.KafkaPolicy) *resource.KafkaPolicy {
	t.Helper()
	inner, err := anypb.New(p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&corev3.TypedExtensionConfig{Name: "policy/egress/kafka", TypedConfig: inner})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := resource.DecodeExtension(a)
	if err != nil {
		t.Fatal(err)
	}
	return ext.Kafka
}

func consumeEvents(t testing.TB) *resource.KafkaPolicy {
	return decodePolicy(t, &kafkav1.KafkaPolicy{Destinations: []*kafkav1.KafkaDestination{{
		Name: "kafka", Addresses: []string{"10.0.0.9"}, Port: 9092,
		Rules: []*kafkav1.KafkaRule{
			{Name: "consume-events", Principals: []string{"10.0.1.0/24"}, Role: "consume", Topic: "events"},
			{Name: "produce-logs", Principals: []string{"10.0.1.5/32"}, Role: "produce", Topic: "logs"},
		},
	}}})
}

// frame encodes a request as a client sends it.
func frame(r kmsg.Request, corr int32, clientID string) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)).AppendRequest(nil, r, corr)
}

// feed drives a parser over b in random splits the way the relay does and
// returns the operations it returned, with the data it saw consumed.
type step struct {
	op parser.Op
	n  int
}

func feed(t testing.TB, p *Parser, reply bool, b []byte, rnd *rand.Rand) []step {
	var steps []step
	var buf []byte
	passLeft := 0
	for len(b) > 0 || len(buf) > 0 {
		if len(b) > 0 {
			k := 1 + rnd.IntN(len(b))
			chunk := b[:k]
			b = b[k:]
			if passLeft > 0 {
				m := min(passLeft, len(chunk))
				passLeft -= m
				chunk = chunk[m:]
			}
			buf = append(buf, chunk...)
		} else if len(buf) == 0 {
			break
		}
		for len(buf) > 0 && passLeft == 0 {
			op, n := p.OnData(reply, false, [][]byte{buf})
			steps = append(steps, step{op, n})
			switch op {
			case parser.Pass, parser.Drop:
				k := min(n, len(buf))
				buf = buf[k:]
				passLeft = n - k
			case parser.More:
				goto next
			default:
				return steps
			}
		}
		if len(b) == 0 && len(buf) > 0 {
			break
		}
	next:
	}
	return steps
}

func newParser(pol *resource.KafkaPolicy, events *[]Event) (*Parser, *parser.Connection) {
	c := &parser.Connection{Src: client, Dst: broker}
	parser.SetInjectLimit(c, 1<<20)
	return NewParser(c, Config{Policy: func() *resource.KafkaPolicy { return pol }, Log: func(e Event) { *events = append(*events, e) }}), c
}

// TestEveryAPIKeyFramesAcrossSplits encodes a default request of every API
// key at every version the proxy advertises, splits it arbitrarily, and
// checks the parser passes exactly the frame (allow-all policy) and reads
// its header.
func TestEveryAPIKeyFramesAcrossSplits(t *testing.T) {
	allowAll := decodePolicy(t, &kafkav1.KafkaPolicy{Destinations: []*kafkav1.KafkaDestination{{Addresses: []string{"0.0.0.0/0"}, Port: 1, EndPort: 65535}}})
	rnd := rand.New(rand.NewPCG(1, 2))
	keys := 0
	for key := int16(0); key < 200; key++ {
		proto := kmsg.RequestForKey(key)
		if proto == nil {
			continue
		}
		keys++
		for v := int16(0); v <= MaxVersion(key); v++ {
			if key == 7 && v == 0 {
				continue
			}
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			if p, ok := req.(*kmsg.ProduceRequest); ok {
				p.Acks = -1
			}
			corr := int32(1000*int(key) + int(v))
			b := frame(req, corr, "client-"+kmsg.NameForKey(key))
			// Two pipelined copies.
			two := append(append([]byte(nil), b...), b...)
			var events []Event
			p, _ := newParser(allowAll, &events)
			steps := feed(t, p, false, two, rnd)
			passes := 0
			for _, s := range steps {
				switch s.op {
				case parser.Pass:
					if s.n != len(b) {
						t.Fatalf("%s v%d: PASS %d, frame is %d bytes", kmsg.NameForKey(key), v, s.n, len(b))
					}
					passes++
				case parser.More:
				default:
					t.Fatalf("%s v%d: unexpected %s %d", kmsg.NameForKey(key), v, s.op, s.n)
				}
			}
			if passes != 2 || len(p.pending) != 2 || p.pending[1].corr != corr || p.pending[0].ev.Request.ClientID != "client-"+kmsg.NameForKey(key) {
				t.Fatalf("%s v%d: passes %d, pending %+v", kmsg.NameForKey(key), v, passes, p.pending)
			}
		}
	}
	if keys < 60 {
		t.Fatalf("only %d API keys known", keys)
	}
}

func TestTopicsOfRequests(t *testing.T) {
	s := func(v string) *string { return &v }
	produce := kmsg.NewPtrProduceRequest()
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "a"}, {Topic: "b"}, {Topic: "a"}}
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	meta.Topics = []kmsg.MetadataRequestTopic{{Topic: s("m")}, {TopicID: [16]byte{1}}}
	metaAll := kmsg.NewPtrMetadataRequest()
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{"x", "y"}
	cfg := kmsg.NewPtrDescribeConfigsRequest()
	cfg.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: 2, ResourceName: "t"}, {ResourceType: 4, ResourceName: "1"}}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version = 8
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "o"}}}}
	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.SubscribedTopicRegex = s("ev.*")
	join := kmsg.NewPtrJoinGroupRequest()
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	for _, tc := range []struct {
		req     kmsg.Request
		topics  []string
		unknown bool
	}{
		{produce, []string{"a", "b"}, false},
		{meta, []string{"m"}, true},
		{metaAll, nil, false},
		{del, []string{"x", "y"}, false},
		{cfg, []string{"t"}, false},
		{of, []string{"o"}, false},
		{hb, nil, true},
		{join, nil, false},
	} {
		got, unknown := topicsOf(tc.req)
		if !reflect.DeepEqual(got, tc.topics) || unknown != tc.unknown {
			t.Errorf("%s: topics %v unknown %v; want %v %v", kmsg.NameForKey(tc.req.Key()), got, unknown, tc.topics, tc.unknown)
		}
	}
}

func TestDecide(t *testing.T) {
	pol := consumeEvents(t)
	req := func(key int16, topics ...string) *Request {
		return &Request{Key: key, Topics: topics}
	}
	for _, tc := range []struct {
		name   string
		src    string
		dst    netip.AddrPort
		r      *Request
		allow  bool
		policy string
		reason string
	}{
		{"consume allowed topic", "10.0.1.7", broker, req(1, "events"), true, "consume-events", ""},
		{"consume other topic", "10.0.1.7", broker, req(1, "secret"), false, "", "topic_not_allowed"},
		{"multi-topic needs all", "10.0.1.7", broker, req(1, "events", "secret"), false, "", "topic_not_allowed"},
		{"topics allowed by different rules", "10.0.1.5", broker, req(3, "events", "logs"), true, "consume-events", ""},
		{"produce not in consume role", "10.0.1.7", broker, req(0, "events"), false, "", "request_not_allowed"},
		{"produce role for its topic", "10.0.1.5", broker, req(0, "logs"), true, "produce-logs", ""},
		{"metadata-all is topic-less", "10.0.1.7", broker, req(3), true, "consume-events", ""},
		{"group api in consume role", "10.0.1.7", broker, req(11), true, "consume-events", ""},
		{"create topics not in any role", "10.0.1.5", broker, req(19, "logs"), false, "", "request_not_allowed"},
		{"unknown source", "10.9.9.9", broker, req(1, "events"), false, "", "request_not_allowed"},
		{"unknown destination", "10.0.1.7", netip.MustParseAddrPort("10.0.0.8:9092"), req(1, "events"), false, "", "unknown_destination"},
		{"topic ids need a topic-less rule", "10.0.1.7", broker, &Request{Key: 1, UnknownTopics: true}, false, "", "topic_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Decide(pol, netip.MustParseAddr(tc.src), tc.dst, tc.r)
			if v.Allowed != tc.allow || v.Policy != tc.policy || v.Reason != tc.reason {
				t.Fatalf("%+v", v)
			}
		})
	}
	empty := decodePolicy(t, &kafkav1.KafkaPolicy{Destinations: []*kafkav1.KafkaDestination{{Name: "open", Addresses: []string{"10.0.0.9"}, Port: 9092}}})
	if v := Decide(empty, client.Addr(), broker, req(19, "x")); !v.Allowed || v.Policy != "open" {
		t.Fatalf("empty rule list: %+v", v)
	}
	if v := Decide(nil, client.Addr(), broker, req(3)); v.Allowed {
		t.Fatal("nil policy allowed")
	}
}

// respond decodes a framed response and checks its correlation id.
func respond(t *testing.T, b []byte, corr int32, resp kmsg.Response) {
	t.Helper()
	if int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		t.Fatalf("length prefix %d, frame %d", binary.BigEndian.Uint32(b), len(b)-4)
	}
	if got := int32(binary.BigEndian.Uint32(b[4:])); got != corr {
		t.Fatalf("correlation id %d, want %d", got, corr)
	}
	body := b[8:]
	if resp.IsFlexible() && resp.Key() != keyAPIVersions {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decoding %s: %v", kmsg.NameForKey(resp.Key()), err)
	}
}

func TestDenialsAreAnsweredInOrder(t *testing.T) {
	pol := consumeEvents(t)
	var events []Event
	p, c := newParser(pol, &events)
	fetch := func(topic string) kmsg.Request {
		r := kmsg.NewPtrFetchRequest()
		r.Version = 12
		r.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0}, {Partition: 1}}}}
		return r
	}
	produce := kmsg.NewPtrProduceRequest()
	produce.Version = 9
	produce.Acks = -1
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "events", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 3}}}}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 9
	join.Group = "g"
	stream := append(frame(fetch("events"), 1, "c"), frame(fetch("secret"), 2, "c")...)
	stream = append(stream, frame(produce, 3, "c")...)
	stream = append(stream, frame(join, 4, "c")...)
	steps := feed(t, p, false, stream, rand.New(rand.NewPCG(3, 4)))
	var ops []parser.Op
	for _, s := range steps {
		if s.op != parser.More {
			ops = append(ops, s.op)
		}
	}
	if !reflect.DeepEqual(ops, []parser.Op{parser.Pass, parser.Drop, parser.Drop, parser.Pass}) {
		t.Fatalf("ops %v", ops)
	}
	if len(parser.Injected(c, true)) != 0 {
		t.Fatal("a denial was answered before the earlier forwarded request")
	}
	// The broker answers fetch 1: the two denials follow it, then join 4
	// is still due.
	fr := kmsg.NewPtrFetchResponse()
	fr.Version = 12
	resp1 := Frame(1, fr)
	if op, n := p.OnData(true, false, [][]byte{resp1}); op != parser.Pass || n != len(resp1) {
		t.Fatalf("response: %s %d", op, n)
	}
	inj := parser.Injected(c, true)
	first := int(binary.BigEndian.Uint32(inj)) + 4
	f2 := kmsg.NewPtrFetchResponse()
	f2.Version = 12
	respond(t, inj[:first], 2, f2)
	if f2.ErrorCode != 0 || len(f2.Topics) != 1 || f2.Topics[0].Topic != "secret" || len(f2.Topics[0].Partitions) != 2 ||
		f2.Topics[0].Partitions[1].Partition != 1 || f2.Topics[0].Partitions[1].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("fetch denial %+v", f2)
	}
	p3 := kmsg.NewPtrProduceResponse()
	p3.Version = 9
	respond(t, inj[first:], 3, p3)
	if p3.Topics[0].Partitions[0].Partition != 3 || p3.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("produce denial %+v", p3)
	}
	if len(p.pending) != 1 || p.pending[0].corr != 4 {
		t.Fatalf("pending %+v", p.pending)
	}
	// A response that is not the oldest request's closes the connection.
	jr := kmsg.NewPtrJoinGroupResponse()
	jr.Version = 9
	if op, _ := p.OnData(true, false, [][]byte{Frame(5, jr)}); op != parser.Error {
		t.Fatalf("unsolicited response: %s", op)
	}
	if len(events) != 3 || events[1].ErrorCode != kerr.TopicAuthorizationFailed || events[2].Verdict.Reason != "topic_not_allowed" {
		t.Fatalf("events %+v", events)
	}
}

func TestErrorCodes(t *testing.T) {
	pol := decodePolicy(t, &kafkav1.KafkaPolicy{Destinations: []*kafkav1.KafkaDestination{{Addresses: []string{"10.0.0.9"}, Port: 9092,
		Rules: []*kafkav1.KafkaRule{{Principals: []string{"10.0.1.0/24"}, ApiKeys: []int32{18}}}}}})
	txn := "t"
	for _, tc := range []struct {
		req  kmsg.Request
		code *kerr.Error
		get  func(kmsg.Response) int16
	}{
		{kmsg.NewPtrJoinGroupRequest(), kerr.GroupAuthorizationFailed, func(r kmsg.Response) int16 { return r.(*kmsg.JoinGroupResponse).ErrorCode }},
		{&kmsg.InitProducerIDRequest{TransactionalID: &txn}, kerr.TransactionalIDAuthorizationFailed, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode }},
		{kmsg.NewPtrInitProducerIDRequest(), kerr.ClusterAuthorizationFailed, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode }},
		{&kmsg.FindCoordinatorRequest{Version: 4, CoordinatorKeys: []string{"g1", "g2"}}, kerr.GroupAuthorizationFailed, func(r kmsg.Response) int16 {
			c := r.(*kmsg.FindCoordinatorResponse).Coordinators
			if len(c) != 2 || c[1].Key != "g2" {
				return -1
			}
			return c[1].ErrorCode
		}},
		{&kmsg.DeleteTopicsRequest{Version: 5, TopicNames: []string{"a"}}, kerr.TopicAuthorizationFailed, func(r kmsg.Response) int16 {
			ts := r.(*kmsg.DeleteTopicsResponse).Topics
			if len(ts) != 1 || ts[0].Topic == nil || *ts[0].Topic != "a" {
				return -1
			}
			return ts[0].ErrorCode
		}},
		{&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}}, kerr.GroupAuthorizationFailed, func(r kmsg.Response) int16 { return r.(*kmsg.DescribeGroupsResponse).Groups[0].ErrorCode }},
		{kmsg.NewPtrDescribeClusterRequest(), kerr.ClusterAuthorizationFailed, func(r kmsg.Response) int16 { return r.(*kmsg.DescribeClusterResponse).ErrorCode }},
	} {
		name := kmsg.NameForKey(tc.req.Key())
		var events []Event
		p, c := newParser(pol, &events)
		b := frame(tc.req, 77, "c")
		if op, n := p.OnData(false, false, [][]byte{b}); op != parser.Drop || n != len(b) {
			t.Fatalf("%s: %s %d", name, op, n)
		}
		resp := tc.req.ResponseKind()
		resp.SetVersion(tc.req.GetVersion())
		respond(t, parser.Injected(c, true), 77, resp)
		if got := tc.get(resp); got != tc.code.Code {
			t.Errorf("%s: error code %d, want %d (%s)", name, got, tc.code.Code, tc.code.Message)
		}
	}
}

func TestAPIVersionsAreCapped(t *testing.T) {
	allowAll := decodePolicy(t, &kafkav1.KafkaPolicy{Destinations: []*kafkav1.KafkaDestination{{Addresses: []string{"10.0.0.9"}, Port: 9092}}})
	var events []Event
	p, c := newParser(allowAll, &events)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	b := frame(req, 9, "c")
	if op, _ := p.OnData(false, false, [][]byte{b}); op != parser.Pass {
		t.Fatalf("request: %s", op)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: 0, MaxVersion: 13}, {ApiKey: 1, MaxVersion: 18}, {ApiKey: 3, MaxVersion: 13}, {ApiKey: 9999, MaxVersion: 1}}
	rb := Frame(9, resp)
	if op, n := p.OnData(true, false, [][]byte{rb[:20]}); op != parser.More || n != len(rb)-20 {
		t.Fatalf("partial response: %s %d", op, n)
	}
	if op, n := p.OnData(true, false, [][]byte{rb}); op != parser.Drop || n != len(rb) {
		t.Fatalf("response: %s %d", op, n)
	}
	got := kmsg.NewPtrApiVersionsResponse()
	got.Version = 3
	respond(t, parser.Injected(c, true), 9, got)
	want := []kmsg.ApiVersionsResponseApiKey{{ApiKey: 0, MaxVersion: 12}, {ApiKey: 1, MaxVersion: 12}, {ApiKey: 3, MaxVersion: 13}}
	if len(got.ApiKeys) != 3 {
		t.Fatalf("keys %+v", got.ApiKeys)
	}
	for i, k := range want {
		if got.ApiKeys[i].ApiKey != k.ApiKey || got.ApiKeys[i].MaxVersion != k.MaxVersion {
			t.Fatalf("key %d: %+v, want %+v", i, got.ApiKeys[i], k)
		}
	}
}

func TestMalformedAndOversizedFrames(t *testing.T) {
	pol := consumeEvents(t)
	pol.MaxRequestBytes = 1024
	for name, b := range map[string][]byte{
		"negative length":    {0x80, 0, 0, 0},
		"short header":       {0, 0, 0, 4, 0, 0, 0, 0},
		"oversized":          {0, 0, 0x10, 0, 0, 1},
		"huge length":        {0x7f, 0xff, 0xff, 0xff},
		"unknown key":        append([]byte{0, 0, 0, 12, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff}, make([]byte, 2)...),
		"client id overflow": {0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff},
	} {
		var events []Event
		p, _ := newParser(pol, &events)
		op, _ := p.OnData(false, false, [][]byte{b})
		if op != parser.Error && op != parser.More {
			t.Errorf("%s: %s", name, op)
		}
		if op == parser.More && len(b) >= 8 && name != "unknown key" {
			t.Errorf("%s: asked for more data", name)
		}
	}
	// Produce without acks that is denied closes the connection.
	pr := kmsg.NewPtrProduceRequest()
	pr.Acks = 0
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "secret"}}
	var events []Event
	p, _ := newParser(pol, &events)
	if op, _ := p.OnData(false, false, [][]byte{frame(pr, 1, "c")}); op != parser.Error {
		t.Fatalf("denied acks=0 produce: %s", op)
	}
}
