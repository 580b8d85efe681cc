package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// kafkaPolicy is Cilium's Kafka getting-started policy on the broker:
// empire-hq may only produce to deathstar-plans, the consumer may only
// consume from events (KAF-01, KAF-02).
const kafkaPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: secure-empire-kafka}
specs:
- endpointSelector: {matchLabels: {app: kafka}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: empire-hq}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka:
        - {role: produce, topic: deathstar-plans}
  - fromEndpoints: [{matchLabels: {app: kafka-consumer}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka:
        - {role: consume, topic: events}
`

// kafkaClient is a franz-go client dialling from inside workload w.
func kafkaClient(t *testing.T, w *testbed.Workload, broker string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(broker),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			return w.DialWith(ctx, &net.Dialer{}, network, host)
		}),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(5 * time.Second),
		kgo.ClientID(fmt.Sprintf("client-%d", w.Index)),
	}, opts...)
	c, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func produce(ctx context.Context, c *kgo.Client, topic, value string) error {
	return c.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}

func authorizationFailure(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed)
}

// TestPolicyKafka runs franz-go clients against franz-go's kfake broker
// through the eBPF redirect and the proxy's Kafka filter.
func TestPolicyKafka(t *testing.T) {
	n := startPolicyNode(t, 3)
	brokerW, consumerW, producerW := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	broker := fmt.Sprintf("%s:9092", brokerW.IPv4)
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return brokerW.Listen(network, broker) }),
		kfake.SeedTopics(1, "events", "deathstar-plans", "empire-announce"),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)

	n.apply(pod("kafka", brokerW, map[string]string{"app": "kafka"}) +
		pod("kafka-consumer", consumerW, map[string]string{"app": "kafka-consumer"}) +
		pod("empire-hq", producerW, map[string]string{"app": "empire-hq"}) + kafkaPolicy)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The broker's own client is local to it: not policed.
	local := kafkaClient(t, brokerW, broker)
	for i := 0; i < 3; i++ {
		if err := produce(ctx, local, "events", fmt.Sprintf("event-%d", i)); err != nil {
			t.Fatalf("seeding events: %v", err)
		}
	}

	// The producer: its topic only, whether it writes plainly or, as
	// franz-go and the Java client do by default, idempotently (the
	// produce role includes InitProducerId; see kafkav1.RoleAPIKeys).
	producer := kafkaClient(t, producerW, broker, kgo.DisableIdempotentWrite())
	if err := produce(ctx, producer, "deathstar-plans", "plans"); err != nil {
		t.Fatalf("produce to an allowed topic: %v", err)
	}
	if err := produce(ctx, producer, "empire-announce", "x"); !authorizationFailure(err) {
		t.Fatalf("produce to a denied topic: got %v, want an authorization error", err)
	}
	idem := kafkaClient(t, producerW, broker)
	if err := produce(ctx, idem, "deathstar-plans", "plans-idempotent"); err != nil {
		t.Fatalf("idempotent produce to an allowed topic: %v", err)
	}
	if err := produce(ctx, idem, "empire-announce", "x"); !authorizationFailure(err) {
		t.Fatalf("idempotent produce to a denied topic: got %v, want an authorization error", err)
	}

	// The consumer: consume events in a group (fetch, offsets, group APIs).
	consumer := kafkaClient(t, consumerW, broker, kgo.ConsumeTopics("events"), kgo.ConsumerGroup("rebels"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < 3 {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consuming events: %v (got %v)", err, got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("committing offsets: %v", err)
	}
	// role consume does not allow producing, even to its own topic.
	plain := kafkaClient(t, consumerW, broker, kgo.DisableIdempotentWrite())
	if err := produce(ctx, plain, "events", "forged"); !authorizationFailure(err) {
		t.Fatalf("consumer producing: got %v, want an authorization error", err)
	}
	// A topic-less request (Metadata for every topic) needs no topic rule.
	md, err := (&kmsg.MetadataRequest{Topics: nil}).RequestWith(ctx, plain)
	if err != nil {
		t.Fatalf("metadata for all topics: %v", err)
	}
	if len(md.Brokers) != 1 {
		t.Errorf("metadata for all topics: %d brokers", len(md.Brokers))
	}
	// Consuming another topic fails with an authorization error.
	other := kafkaClient(t, consumerW, broker, kgo.ConsumeTopics("deathstar-plans"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	var denied error
	for denied == nil && pctx.Err() == nil {
		fs := other.PollFetches(pctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if authorizationFailure(err) {
				denied = err
			}
		})
		if fs.NumRecords() > 0 {
			t.Fatal("the consumer read deathstar-plans")
		}
	}
	if denied == nil {
		t.Fatal("consuming a denied topic: no authorization error within 10s")
	}

	// Denials are Kafka flows with the error sent.
	waitUntil(t, "a TOPIC_AUTHORIZATION_FAILED flow", func() bool {
		saw := false
		for _, f := range n.flows.Query(flow.Filter{Verdict: flow.Dropped, Protocol: flow.ProtocolKafka}, 0) {
			if f.Kafka == nil || f.Kafka.ErrorCode == 0 || f.Kafka.ErrorName == "" {
				t.Fatalf("dropped Kafka flow without the error sent: %+v", f)
			}
			saw = saw || f.Kafka.ErrorName == "TOPIC_AUTHORIZATION_FAILED"
		}
		return saw
	})
	n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Forwarded, Protocol: flow.ProtocolKafka, Workload: "default/kafka-consumer"}}, 1)
}
