package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// kafkaPolicy lets empire-hq produce to empire-announce only (Cilium's
// Kafka example, role produce).
const kafkaPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: kafka
spec:
  endpointSelector:
    matchLabels:
      app: kafka
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: empire-hq
    toPorts:
    - ports:
      - port: "9092"
        protocol: TCP
      rules:
        kafka:
        - role: produce
          topic: empire-announce
`

// TestLabKafkaPolicyAcrossNodes: a franz-go producer in a Pod on node-1
// reaches the kfake broker on node-2 through the kafka Service's
// ClusterIP (bootstrap) and then the broker's Pod address (metadata).
// Without a policy it writes to any topic; under a Kafka policy applied
// through the API server, node-2's proxy lets it produce to its topic and
// answers TOPIC_AUTHORIZATION_FAILED for another.
func TestLabKafkaPolicyAcrossNodes(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/kafka-placed.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitServices(ctx, *s, l.Client, time.Minute); err != nil {
		t.Fatal(err)
	}
	hq, err := l.Client.CoreV1().Pods("default").Get(ctx, "empire-hq", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := l.Client.CoreV1().Services("default").Get(ctx, "kafka", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := network.PodNamespace(l.ID, string(hq.UID))
	ns := &testbed.Namespace{Name: name, Path: filepath.Join("/run/netns", name)}
	// produce writes one record with a fresh client (so a fresh connection,
	// judged by the policy in force) from empire-hq's namespace.
	produce := func(topic string) error {
		c, err := kgo.NewClient(
			kgo.SeedBrokers(net.JoinHostPort(svc.Spec.ClusterIP, "9092")),
			kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) { return ns.Dial(ctx, network, host) }),
			kgo.DisableIdempotentWrite(),
			kgo.RequestTimeoutOverhead(5*time.Second), kgo.RetryTimeout(5*time.Second),
		)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return c.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("the plans")}).FirstErr()
	}
	for _, topic := range []string{"empire-announce", "deathstar-plans"} {
		eventually(t, "producing to "+topic+" without a policy", time.Minute, func() error { return produce(topic) })
	}

	if err := controlplane.Apply(ctx, l.Config, []byte(kafkaPolicy)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deathstar-plans is refused", time.Minute, func() error {
		if err := produce("deathstar-plans"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			return fmt.Errorf("got %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if err := produce("empire-announce"); err != nil {
			t.Fatalf("producing to the allowed topic under the policy: %v", err)
		}
		if err := produce("deathstar-plans"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("producing to a denied topic under the policy: got %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
	}
}
