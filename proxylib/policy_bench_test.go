package proxylib_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

// rbacRules builds n Cilium-style HTTP rules for one destination, as the
// translator emits them: method and path regexes per rule, all for the
// same endpoint and port, so every request walks them in order. The
// benchmark's requests match the last one (the worst case).
func rbacRules(t testing.TB, n int, dst string) *corev3.TypedExtensionConfig {
	host, port, _ := net.SplitHostPort(dst)
	var p uint32
	fmt.Sscan(port, &p)
	pols := map[string]*rbacv3.Policy{}
	for j := 0; j < n; j++ {
		perms := append(permDst(host, p), permHeader(":method", "GET|HEAD"), permHeader(":path", fmt.Sprintf("/api/v1/resource-%04d(/.*)?", j)))
		pols[fmt.Sprintf("cnp/bench/api/ingress/0/port/%d/http/%04d", p, j)] = &rbacv3.Policy{
			Permissions: []*rbacv3.Permission{permAnd(perms...)}, Principals: fromIPs("127.0.0.1", "127.0.0.2")}
	}
	return rbacConfig(t, "bench/rbac", &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: pols}})
}

// BenchmarkHTTPPolicy measures keep-alive HTTP/1.1 requests through the
// proxy with 0, 10 and 1000 L7 rules (RBAC over ECDS), 16 connections,
// and reports requests/s and latency percentiles.
func BenchmarkHTTPPolicy(b *testing.B) {
	backendAddr := rawBackend(b)
	for _, rules := range []int{0, 10, 1000} {
		b.Run(fmt.Sprintf("rules=%d", rules), func(b *testing.B) {
			x := startXDS(b, "", nil)
			addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(freePort(b)))
			var mod func(*hcmv3.HttpConnectionManager)
			res := []proto.Message{routeConfig("rc", vh("bench", "*", prefixRoute("/", "c"))), edsCluster(b, "c", false, nil), cla("c", backendAddr)}
			if rules > 0 {
				mod = func(h *hcmv3.HttpConnectionManager) {
					h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "bench/rbac",
						ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: adsECDS("type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC")}}}, h.HttpFilters...)
				}
				res = append(res, rbacRules(b, rules, addr))
			}
			res = append(res, httpListener(b, "l", addr, "rc", mod))
			x.set(res...)
			startProxy(b, x.sock)
			waitServing(b, "http://"+addr+"/", "bench")
			path := fmt.Sprintf("/api/v1/resource-%04d/items", max(rules-1, 0))
			req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n\r\n")
			const conns = 16
			var mu sync.Mutex
			var lat []time.Duration
			b.ReportAllocs()
			b.SetParallelism(conns / 2) // GOMAXPROCS is 2 here
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				br := bufio.NewReaderSize(c, 4096)
				mine := make([]time.Duration, 0, 1<<16)
				for pb.Next() {
					t0 := time.Now()
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if err := readResponse(br); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// kafkaProxy serves a tcp_proxy listener to a STATIC cluster at broker,
// with the Kafka policy filter when policy is non-nil.
func kafkaProxy(b *testing.B, broker string, policy *kafkav1.KafkaPolicy) string {
	x := startXDS(b, "", nil)
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(freePort(b)))
	tp := &tcpproxyv3.TcpProxy{StatPrefix: "kafka", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "broker"}}
	filters := []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(b, tp)}}}
	res := []proto.Message{}
	if policy != nil {
		filters = append([]*listenerv3.Filter{{Name: "bench/kafka", ConfigType: &listenerv3.Filter_ConfigDiscovery{ConfigDiscovery: adsECDS(kafkav1.TypeURL)}}}, filters...)
		res = append(res, kafkaConfig(b, "bench/kafka", policy))
	}
	c := &clusterv3.Cluster{Name: "broker", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "broker", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(broker)}}}}}}}}
	res = append(res, c, &listenerv3.Listener{Name: "kafka", Address: sockAddr(addr), FilterChains: []*listenerv3.FilterChain{{Filters: filters}}})
	x.set(res...)
	p := startProxy(b, x.sock)
	deadline := time.Now().Add(10 * time.Second)
	for len(p.Listeners()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return addr
}

// BenchmarkKafkaProduce measures franz-go produce throughput (1 KiB
// records, acks=all) to a kfake broker directly, through the proxy's
// tcp_proxy, and through the proxy with the Kafka policy parser judging
// every request.
func BenchmarkKafkaProduce(b *testing.B) {
	for _, mode := range []string{"direct", "tcp_proxy", "kafka_parser"} {
		b.Run(mode, func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			broker := c.ListenAddrs()[0]
			target := broker
			switch mode {
			case "tcp_proxy":
				target = kafkaProxy(b, broker, nil)
			case "kafka_parser":
				target = kafkaProxy(b, broker, &kafkav1.KafkaPolicy{Destinations: []*kafkav1.KafkaDestination{{
					Name: "bench", Addresses: []string{"127.0.0.1"}, Port: 1, EndPort: 65535,
					Rules: []*kafkav1.KafkaRule{{Name: "produce-events", Principals: []string{"127.0.0.0/8"}, Role: "produce", Topic: "events"}},
				}}})
			}
			// Every broker connection goes to the target (kfake
			// advertises its own address).
			d := &net.Dialer{}
			cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("events"),
				kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
					return d.DialContext(ctx, network, target)
				}))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			value := []byte(strings.Repeat("k", 1024))
			ctx := context.Background()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
				b.Fatalf("warm-up produce: %v", err)
			}
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			start := time.Now()
			var errOnce sync.Once
			for i := 0; i < b.N; i++ {
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						errOnce.Do(func() { b.Error(err) })
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
