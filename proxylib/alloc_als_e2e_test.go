package proxylib_test

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	grpclogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"
)

// countingALS is a real AccessLogService server whose codec counts the
// HTTP entries of each message on the wire instead of decoding them, so
// the server adds only gRPC's per-message work (a message carries about
// 16 KiB of entries) to the process's allocations, not a decode per entry
// nor a copy of each message.
type countingALS struct {
	alsv3.UnimplementedAccessLogServiceServer
	entries atomic.Int64
}

func (s *countingALS) StreamAccessLogs(st alsv3.AccessLogService_StreamAccessLogsServer) error {
	var m alsv3.StreamAccessLogsMessage
	for {
		if err := st.RecvMsg(&m); err != nil {
			return nil
		}
	}
}

// countingCodec counts the http_logs.log_entry fields of a
// StreamAccessLogsMessage (fields 2 and 1); it only reads.
type countingCodec struct{ s *countingALS }

func (c countingCodec) Marshal(any) (mem.BufferSlice, error) { return nil, nil }
func (c countingCodec) Name() string                         { return "proto" }

// Unmarshal reads the message from a buffer of gRPC's pool, so the server
// allocates nothing per message for it either.
func (c countingCodec) Unmarshal(data mem.BufferSlice, _ any) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			return fmt.Errorf("field %d: wire type %d", num, typ)
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if num != 2 { // http_logs
			continue
		}
		for len(v) > 0 {
			_, _, n := protowire.ConsumeField(v)
			if n < 0 {
				return protowire.ParseError(n)
			}
			v = v[n:]
			c.s.entries.Add(1)
		}
	}
	return nil
}

func startCountingALS(t testing.TB) (*countingALS, string) {
	s := &countingALS{}
	sock := filepath.Join(t.TempDir(), "als.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(countingCodec{s}))
	alsv3.RegisterAccessLogServiceServer(gs, s)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return s, sock
}

// A keep-alive HTTP/1.1 request through a policy listener (an RBAC filter
// with an L7 rule and the gRPC access log, as on the policy hop) allocates
// close to nothing: each request's entry is encoded into the sender's
// reused buffers, not built as messages and marshalled by reflection.
// Measured over the whole process: the client and backend allocate
// nothing per request and the ALS server only per message, so the count
// is the proxy's, with the sender's per-message gRPC work amortized over
// the message's entries. Building and marshalling entries as messages
// cost 15.6 allocations (3.0 KB) per request here; encoding them by hand
// into reused and pooled buffers, about 0.55 (under 100 B).
func TestHTTP1PolicyRequestWithAccessLogAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop pooled buffers on purpose")
	}
	backendAddr := rawBackend(t)
	als, sock := startCountingALS(t)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	logs := []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.http_grpc", ConfigType: &accesslogv3.AccessLog_TypedConfig{
		TypedConfig: anyOf(t, &grpclogv3.HttpGrpcAccessLogConfig{CommonConfig: &grpclogv3.CommonGrpcAccessLogConfig{
			LogName: "policy/ingress/http", TransportApiVersion: corev3.ApiVersion_V3,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "nodemesh-als"}}},
			BufferFlushInterval: durationpb.New(time.Second)}})}}}
	x.set(httpListener(t, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "bench/rbac",
			ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: adsECDS("type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC")}}}, h.HttpFilters...)
		h.AccessLog = logs
	}),
		rbacRules(t, 1, addr),
		routeConfig("rc", vh("alloc", "*", prefixRoute("/", "c"))),
		edsCluster(t, "c", false, nil), cla("c", backendAddr), alsCluster(t, sock))
	startProxy(t, x.sock)

	req := []byte("GET /api/v1/resource-0000/items HTTP/1.1\r\nHost: alloc.example\r\nUser-Agent: alloc-test/1.0\r\n" +
		"X-Request-Id: 0b7e6f4a-5d1c-4c1e-9d7a-2f6c1f3b8e11\r\n\r\n")
	var c net.Conn
	var br *bufio.Reader
	try := func() error {
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", addr); err != nil {
				return err
			}
			br = bufio.NewReaderSize(c, 4096)
		}
		if _, err := c.Write(req); err != nil {
			return err
		}
		return readResponse(br)
	}
	do := func() {
		if err := try(); err != nil {
			t.Fatal(err)
		}
	}
	// Until the listener, its route, policy and the access log's cluster
	// are all in place, a request may fail (on a fresh connection each
	// time) or its entry wait for the log's stream.
	for deadline := time.Now().Add(20 * time.Second); ; {
		err := try()
		if err == nil && als.entries.Load() > 0 {
			break
		}
		if err != nil && c != nil {
			c.Close()
			c = nil
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy listener did not serve and log a request: %v (%d entries)", err, als.entries.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()
	// Warm the pools, buffers, the upstream connection and the access
	// log's stream.
	for range 1000 {
		do()
	}
	const n = 8000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		do()
	}
	runtime.ReadMemStats(&after)
	mallocs := float64(after.Mallocs-before.Mallocs) / n
	bytes := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.2f heap allocations and %.0f B per request (policy listener with an access log)", mallocs, bytes)
	// What is left is gRPC's work per access-log message (about 30
	// entries) on both ends: about 0.55 per request.
	if mallocs > 1.2 {
		t.Fatalf("%.2f heap allocations (%.0f B) per request through a policy listener with an access log, want at most 1.2", mallocs, bytes)
	}
	// Bytes too: the garbage collector runs by bytes allocated. A fresh
	// 16 KiB slice per message was 450-530 B per request; pooled, it is
	// 50-130 B, up to about 200 on a loaded machine (pool misses while
	// messages are in flight).
	if bytes > 320 {
		t.Fatalf("%.0f B allocated per request through a policy listener with an access log, want at most 320", bytes)
	}
	want := int64(n + 1000)
	deadline := time.Now().Add(20 * time.Second)
	for als.entries.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries reached the server, want at least %d", als.entries.Load(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
