package proxylib_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// openKafka allows everything to the broker address.
func openKafka() *kafkav1.KafkaPolicy {
	return &kafkav1.KafkaPolicy{Destinations: []*kafkav1.KafkaDestination{{Name: "open", Addresses: []string{kafkaBroker}, Port: 1, EndPort: 65535}}}
}

// kafkaPolicy: tiefighter (10.99.1.5) may consume "events" and produce to
// "logs"; 10.99.1.6 may only consume "events".
func kafkaPolicy() *kafkav1.KafkaPolicy {
	return &kafkav1.KafkaPolicy{Destinations: []*kafkav1.KafkaDestination{{
		Name: "cnp/default/kafka/egress/0", Addresses: []string{kafkaBroker}, Port: 1, EndPort: 65535,
		Rules: []*kafkav1.KafkaRule{
			{Name: "cnp/default/kafka/egress/0/port/9092/kafka/0", Principals: []string{"10.99.1.0/24"}, Role: "consume", Topic: "events"},
			{Name: "cnp/default/kafka/egress/0/port/9092/kafka/1", Principals: []string{tiefighter + "/32"}, Role: "produce", Topic: "events"},
		},
	}}}
}

func startKafka(t *testing.T) []string {
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, "events", "secret"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, kafkaBroker+":0") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func kafkaClient(t *testing.T, seeds []string, src string, opts ...kgo.Opt) *kgo.Client {
	base := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.Dialer(dialFrom(src).DialContext), kgo.ClientID("tiefighter-app"),
		kgo.RequestRetries(1), kgo.RetryTimeout(3 * time.Second), kgo.ProduceRequestTimeout(3 * time.Second)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(t *testing.T, cl *kgo.Client, topic, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}

func TestPolicyKafka(t *testing.T) {
	if !inPolicyNetns(t) {
		return
	}
	seeds := startKafka(t)
	e := startPolicy(t, starWarsRBAC(t), kafkaConfig(t, "policy/egress/kafka", kafkaPolicy()))

	// Produce and consume on the allowed topic.
	prod := kafkaClient(t, seeds, tiefighter)
	if err := produce(t, prod, "events", "hello"); err != nil {
		t.Fatalf("produce to events: %v", err)
	}
	cons := kafkaClient(t, seeds, tiefighter, kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got := ""
	for got == "" && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = string(r.Value) })
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				t.Fatalf("consuming events: %v", fe.Err)
			}
		}
	}
	if got != "hello" {
		t.Fatalf("consumed %q", got)
	}

	// A denied topic gets Kafka's authorization error, not a hang.
	if err := produce(t, prod, "secret", "x"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to secret: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	secret := kafkaClient(t, seeds, tiefighter, kgo.ConsumeTopics("secret"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var fetchErr error
	for fetchErr == nil && ctx.Err() == nil {
		fs := secret.PollFetches(ctx)
		for _, fe := range fs.Errors() {
			fetchErr = fe.Err
		}
	}
	if !errors.Is(fetchErr, kerr.TopicAuthorizationFailed) {
		t.Fatalf("consume secret: %v, want TOPIC_AUTHORIZATION_FAILED", fetchErr)
	}

	// role: consume permits consuming (with a group: fetch, offset and
	// group APIs) but not producing.
	consumer := "10.99.1.6"
	group := kafkaClient(t, seeds, consumer, kgo.ConsumeTopics("events"), kgo.ConsumerGroup("deathstar-readers"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got = ""
	for got == "" && ctx.Err() == nil {
		fs := group.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = string(r.Value) })
		for _, fe := range fs.Errors() {
			t.Fatalf("group consume: %v", fe.Err)
		}
	}
	if got != "hello" {
		t.Fatalf("group consumed %q", got)
	}
	if err := group.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("committing offsets: %v", err)
	}
	// An idempotent producer is stopped at InitProducerId, a plain one at
	// Produce itself.
	if err := produce(t, kafkaClient(t, seeds, consumer), "events", "x"); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("role consume, idempotent produce: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	if err := produce(t, kafkaClient(t, seeds, consumer, kgo.DisableIdempotentWrite()), "events", "x"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("role consume, produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	// Metadata for all topics names no topic: allowed as Cilium documents.
	md := kafkaClient(t, seeds, consumer)
	topics, err := md.Request(ctx, kmsgMetadataAll())
	if err != nil {
		t.Fatalf("metadata for all topics: %v", err)
	}
	if n := metadataTopics(topics); n < 2 {
		t.Fatalf("metadata-all listed %d topics", n)
	}

	// Every Kafka request is logged with its L7 fields.
	e.als.waitTCP(t, "for the denied secret topic", func(x *datav3.TCPAccessLogEntry) bool {
		m := l7(x.GetCommonProperties())
		ts, _ := m[l7meta.KafkaTopics].([]any)
		return m[l7meta.Protocol] == "kafka" && m[l7meta.Verdict] == l7meta.VerdictDropped && m[l7meta.Reason] == "topic_not_allowed" &&
			len(ts) == 1 && ts[0] == "secret" && m[l7meta.KafkaErrorCode] == float64(kerr.TopicAuthorizationFailed.Code) &&
			m[l7meta.KafkaClientID] == "tiefighter-app"
	})
	e.als.waitTCP(t, "for the denied produce", func(x *datav3.TCPAccessLogEntry) bool {
		m := l7(x.GetCommonProperties())
		src := x.GetCommonProperties().GetDownstreamRemoteAddress().GetSocketAddress().GetAddress()
		return m[l7meta.KafkaAPIKeyName] == "Produce" && m[l7meta.Verdict] == l7meta.VerdictDropped &&
			m[l7meta.Reason] == "request_not_allowed" && src == consumer
	})
	e.als.waitTCP(t, "for an allowed fetch", func(x *datav3.TCPAccessLogEntry) bool {
		m := l7(x.GetCommonProperties())
		return m[l7meta.KafkaAPIKeyName] == "Fetch" && m[l7meta.Verdict] == l7meta.VerdictForwarded &&
			m[l7meta.Policy] == "cnp/default/kafka/egress/0/port/9092/kafka/0"
	})
}
