package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// TestPolicyEgressHTTP: an egress L7 rule is enforced by the egress
// policy listener; other ports of the peer are not reachable at all.
func TestPolicyEgressHTTP(t *testing.T) {
	n := startPolicyNode(t, 2)
	web, client := n.bed.Workloads[0], n.bed.Workloads[1]
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok "+r.URL.Path) })
	serveHTTP(t, web, 80, h)
	serveHTTP(t, web, 81, h)
	pods := pod("web", web, map[string]string{"app": "web"}) + pod("client", client, map[string]string{"app": "client"})
	egress := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-egress}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/public/.*"}]
`
	n.apply(pods + egress)
	base := fmt.Sprintf("http://%s", web.IPv4)
	if code, body := request(t, client, "GET", base+"/public/a"); code != 200 || body != "ok /public/a" {
		t.Fatalf("allowed egress request: %d %q", code, body)
	}
	if code, body := request(t, client, "GET", base+"/private"); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("denied egress request: %d %q", code, body)
	}
	cannotConnect(t, client, fmt.Sprintf("%s:81", web.IPv4))
	f := n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Dropped, Protocol: flow.ProtocolHTTP, Workload: "default/client"}}, 1)
	if f[0].Direction != "egress" || f[0].Listener != "policy/egress/http" {
		t.Errorf("egress flow %+v", f[0])
	}

	// The destination's own ingress rules apply too, although the datapath
	// does not redirect the egress proxy's connection a second time.
	n.apply(pods + egress + `---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-ingress}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/public/a"}]
`)
	if code, body := request(t, client, "GET", base+"/public/a"); code != 200 || body != "ok /public/a" {
		t.Fatalf("allowed by both sides: %d %q", code, body)
	}
	if code, body := request(t, client, "GET", base+"/public/b"); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("allowed by the client's egress rule, denied by the web's ingress rule: %d %q", code, body)
	}
}

// TestPolicyKafkaEgress is the consumer-side policy of FEATURES AT-POL-04
// (egress toEndpoints app=kafka, port 9092, role consume, topic events),
// enforced by the egress Kafka listener.
func TestPolicyKafkaEgress(t *testing.T) {
	n := startPolicyNode(t, 2)
	brokerW, consumerW := n.bed.Workloads[0], n.bed.Workloads[1]
	broker := fmt.Sprintf("%s:9092", brokerW.IPv4)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events", "other"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return brokerW.Listen(network, broker) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	n.apply(pod("kafka", brokerW, map[string]string{"app": "kafka"}) +
		pod("kafka-consumer", consumerW, map[string]string{"app": "kafka-consumer"}) + `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: kafka-policy}
spec:
  endpointSelector: {matchLabels: {app: kafka-consumer}}
  egress:
  - toEndpoints: [{matchLabels: {app: kafka}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka: [{role: consume, topic: events}]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	local := kafkaClient(t, brokerW, broker)
	if err := produce(ctx, local, "events", "e"); err != nil {
		t.Fatal(err)
	}
	consumer := kafkaClient(t, consumerW, broker, kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableIdempotentWrite())
	fs := consumer.PollFetches(ctx)
	if err := fs.Err0(); err != nil || fs.NumRecords() != 1 {
		t.Fatalf("consuming events: %d records, %v", fs.NumRecords(), err)
	}
	if err := produce(ctx, consumer, "events", "forged"); !authorizationFailure(err) {
		t.Fatalf("producing from a consumer: got %v, want an authorization error", err)
	}
	// Every denial is a flow (franz-go also asks for telemetry
	// subscriptions, which the consume role does not allow either).
	waitUntil(t, "a flow for the denied Produce", func() bool {
		saw := false
		for _, f := range n.flows.Query(flow.Filter{Verdict: flow.Dropped, Protocol: flow.ProtocolKafka}, 0) {
			if f.Direction != "egress" || f.Kafka == nil || f.Kafka.ErrorCode == 0 {
				t.Fatalf("egress Kafka flow %+v", f)
			}
			saw = saw || f.Kafka.APIKeyName == "Produce"
		}
		return saw
	})
}

// TestPolicyBadInputKeepsEnforcing: a broken policy is rejected with an
// error naming the rule, the others stay enforced; a broken update of an
// enforced policy keeps its previous version in force.
func TestPolicyBadInputKeepsEnforcing(t *testing.T) {
	n := startPolicyNode(t, 3)
	deathstar, tiefighter := n.bed.Workloads[0], n.bed.Workloads[1]
	serveHTTP(t, deathstar, 80, deathstarHandler())
	url := fmt.Sprintf("http://%s/v1/", deathstar.IPv4)
	bad := `---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: broken}
spec:
  endpointSelector: {matchLabels: {class: tiefighter}}
  ingress:
  - toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules: {http: [{}]}
`
	st := n.applyLenient(starWarsPods(n) + rule1L7 + bad)
	states := map[string]agentPolicy{}
	for _, p := range st.Policy.Policies {
		states[p.Name] = agentPolicy{p.State, p.Error}
	}
	if s := states["broken"]; s.state != policy.Rejected || !strings.Contains(s.err, "spec.ingress[0].toPorts[0].ports[0].protocol: http rules need TCP, not UDP") {
		t.Errorf("broken policy: %+v", s)
	}
	if s := states["rule1"]; s.state != policy.Enforced {
		t.Errorf("rule1: %+v", s)
	}
	if code, _ := request(t, tiefighter, "PUT", url+"exhaust-port"); code != 403 {
		t.Fatalf("rule1 must stay enforced next to a broken policy: PUT got %d", code)
	}
	// Break rule1 itself: its previous version stays in force.
	st = n.applyLenient(starWarsPods(n) + strings.Replace(rule1L7, `path: "/v1/request-landing"`, `path: "/v1/(request-landing"`, 1))
	if p := st.Policy.Policies[0]; p.State != policy.EnforcedPrevious || !strings.Contains(p.Error, "invalid regular expression") {
		t.Fatalf("broken update: %+v", p)
	}
	time.Sleep(100 * time.Millisecond)
	if code, _ := request(t, tiefighter, "PUT", url+"exhaust-port"); code != 403 {
		t.Fatalf("the previous version of rule1 must stay enforced: PUT got %d", code)
	}
	if code, _ := request(t, tiefighter, "POST", url+"request-landing"); code != 200 {
		t.Fatalf("POST under the previous version: %d", code)
	}
}

type agentPolicy struct {
	state policy.PolicyState
	err   string
}
