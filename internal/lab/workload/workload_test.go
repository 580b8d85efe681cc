package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/echo"
)

// syncBuffer is a goroutine-safe output sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a workload inside a Pod-like namespace (an address besides
// loopback, as the Kafka broker needs) and stops it when the test ends,
// checking that it stopped cleanly.
func start(t *testing.T, args ...string) *testbed.Workload {
	t.Helper()
	bed := testbed.New(t, testbed.Config{Workloads: 1})
	w := bed.Workloads[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := &syncBuffer{}
	go func() { done <- w.Do(func() error { return Run(ctx, args, out) }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("workload %v stopped with %v; output:\n%s", args, err, out)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("workload %v did not stop", args)
		}
	})
	// Wait until it serves (or failed at once).
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "serving") && !strings.Contains(out.String(), "waiting") {
		select {
		case err := <-done:
			t.Fatalf("workload %v exited: %v; output:\n%s", args, err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("workload %v did not start; output:\n%s", args, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w
}

func httpClient(w *testbed.Workload) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: w.Dial}}
}

func TestEchoListensOnContainerPorts(t *testing.T) {
	t.Setenv("HOSTNAME", "echo-pod")
	t.Setenv(PortsEnv, "8081,8082")
	w := start(t, "echo", "--port=8080")
	for _, port := range []string{"8081", "8082"} {
		resp, err := httpClient(w).Get("http://" + net.JoinHostPort(w.IPv4.String(), port) + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		var got echo.Response
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || got.Backend != "echo-pod" || got.Path != "/hello" {
			t.Fatalf("port %s: %+v, %v", port, got, err)
		}
	}
	// The default port is replaced, not added to.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := w.Dial(ctx, "tcp", net.JoinHostPort(w.IPv4.String(), "8080")); err == nil {
		c.Close()
		t.Fatal("echo also listens on its default port")
	}
}

func TestDeathstar(t *testing.T) {
	t.Setenv(PortsEnv, "")
	w := start(t, Image{Workload: "deathstar", Ports: []int{80}}.Args()...)
	base := "http://" + net.JoinHostPort(w.IPv4.String(), "80")
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{http.MethodPost, "/v1/request-landing", 200, "Ship landed\n"},
		{http.MethodPut, "/v1/exhaust-port", 200, "Panic: deathstar exploded\n"},
		{http.MethodGet, "/v1/request-landing", 405, ""},
		{http.MethodGet, "/v1/", 200, `"Death Star"`},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := httpClient(w).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
			t.Fatalf("%s %s: %d %q", tc.method, tc.path, resp.StatusCode, b)
		}
	}
}

func TestGRPCEcho(t *testing.T) {
	t.Setenv(PortsEnv, "")
	t.Setenv("HOSTNAME", "grpc-pod")
	w := start(t, "grpc-echo", "--port=50051")
	conn, err := grpc.NewClient(net.JoinHostPort(w.IPv4.String(), "50051"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return w.Dial(ctx, "tcp", addr) }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", hc, err)
	}
	// Any method answers with the request's bytes, and echoes metadata.
	in, out := &rawMessage{b: []byte("\x0a\x05hello")}, &rawMessage{}
	var hdr metadata.MD
	mctx := metadata.AppendToOutgoingContext(ctx, "x-ship", "tiefighter")
	if err := conn.Invoke(mctx, "/starwars.Deathstar/RequestLanding", in, out, grpc.ForceCodec(echoCodec{}), grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in.b, out.b) || hdr.Get("echo-x-ship")[0] != "tiefighter" || hdr.Get("echo-method")[0] != "/starwars.Deathstar/RequestLanding" ||
		len(hdr.Get("echo-backend")) != 1 || hdr.Get("echo-backend")[0] != "grpc-pod" {
		t.Fatalf("echo: %q, header %v", out.b, hdr)
	}
	// Streams echo every message.
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/x.Chat/Talk", grpc.ForceCodec(echoCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		msg := []byte(fmt.Sprintf("message %d", i))
		if err := st.SendMsg(&rawMessage{b: msg}); err != nil {
			t.Fatal(err)
		}
		var got rawMessage
		if err := st.RecvMsg(&got); err != nil || !bytes.Equal(got.b, msg) {
			t.Fatalf("stream message %d: %q, %v", i, got.b, err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := st.RecvMsg(&rawMessage{}); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
}

func TestKafkaBroker(t *testing.T) {
	t.Setenv(PortsEnv, "")
	w := start(t, "kafka", "--port=9092", "--topic=empire-announce")
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(net.JoinHostPort(w.IPv4.String(), "9092")),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) { return w.Dial(ctx, network, host) }),
		kgo.ConsumeTopics("empire-announce"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "empire-announce", Value: []byte("Happy 40th Birthday to General Tagge")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetches := cl.PollFetches(ctx)
	if errs := fetches.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	recs := fetches.Records()
	if len(recs) != 1 || string(recs[0].Value) != "Happy 40th Birthday to General Tagge" {
		t.Fatalf("consumed %v", recs)
	}
	// Metadata points clients at the Pod's address, not loopback.
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Brokers) != 1 || meta.Brokers[0].Host != w.IPv4.String() || meta.Brokers[0].Port != 9092 {
		t.Fatalf("brokers %+v", meta.Brokers)
	}
}

func TestIdleAndRunErrors(t *testing.T) {
	start(t, "idle")
	if err := Run(context.Background(), []string{"nothing"}, io.Discard); err == nil || !strings.Contains(err.Error(), "deathstar") {
		t.Fatalf("unknown workload: %v", err)
	}
	t.Setenv(PortsEnv, "80,http")
	if err := Run(context.Background(), []string{"echo"}, io.Discard); err == nil || !strings.Contains(err.Error(), PortsEnv) {
		t.Fatalf("bad ports: %v", err)
	}
}

func TestImagesNameKnownWorkloads(t *testing.T) {
	seen := map[string]bool{}
	for _, im := range Images {
		if _, ok := workloads[im.Workload]; !ok {
			t.Errorf("%s maps to unknown workload %q", im.Repository, im.Workload)
		}
		if seen[im.Repository] {
			t.Errorf("%s listed twice", im.Repository)
		}
		seen[im.Repository] = true
		if strings.ContainsAny(im.Repository, "@") || strings.Count(im.Repository, "/") < 1 {
			t.Errorf("%s is not a full repository name", im.Repository)
		}
	}
}

// The lab serves registry.k8s.io/gateway-api/echo-basic with the real
// echo-basic, whose answers (namespace, Pod, request headers) the Gateway
// API conformance suite checks; the lab lets later image entries win, so
// an entry here for that repository would replace it.
func TestImagesLeaveEchoBasicToTheLab(t *testing.T) {
	for _, im := range Images {
		if im.Repository == "registry.k8s.io/gateway-api/echo-basic" {
			t.Fatalf("Images maps %s to workload %q, replacing the real echo-basic the conformance suite needs", im.Repository, im.Workload)
		}
	}
}
