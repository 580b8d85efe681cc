package hcm

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// headCollector is a gRPC access-log service keeping the HTTP entries it
// receives.
type headCollector struct {
	alsv3.UnimplementedAccessLogServiceServer
	mu      sync.Mutex
	entries []*datav3.HTTPAccessLogEntry
}

func (c *headCollector) StreamAccessLogs(st alsv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		m, err := st.Recv()
		if err != nil {
			return nil
		}
		c.mu.Lock()
		c.entries = append(c.entries, m.GetHttpLogs().GetLogEntry()...)
		c.mu.Unlock()
	}
}

func (c *headCollector) wait(t *testing.T, n int) []*datav3.HTTPAccessLogEntry {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		got := len(c.entries)
		c.mu.Unlock()
		if got >= n {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) < n {
		t.Fatalf("%d access-log entries, want %d", len(c.entries), n)
	}
	return c.entries
}

// TestLoggedHeadSurvivesStreamedBody: an HTTP/1.1 request whose body (or
// upgraded stream) arrives after its head is read into the buffer the
// head viewed; its access-log entry must still carry the request's
// method, path, authority and headers, not body bytes.
func TestLoggedHeadSurvivesStreamedBody(t *testing.T) {
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &headCollector{}
	gs := grpc.NewServer()
	alsv3.RegisterAccessLogServiceServer(gs, col)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)

	be := requestBackend(t, func(c net.Conn, br *bufio.Reader, req *http.Request) bool {
		if req.Header.Get("Upgrade") != "" {
			fmt.Fprint(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
			io.Copy(c, br) // echo until the client closes
			return false
		}
		io.Copy(io.Discard, req.Body)
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	rt, _ := oneClusterRuntime(t, be)
	rt.ALS = accesslog.NewManager("n", func(string) (string, bool) { return gl.Addr().String(), true }, nil)
	t.Cleanup(func() { rt.ALS.Close(t.Context()) })
	h := NewHandler(rt, &resource.HCM{RouteConfigName: "rc", Codec: resource.CodecHTTP1, ServerName: "envoy",
		IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute, Upgrades: map[string]bool{"websocket": true},
		AccessLogs: []*resource.AccessLog{{Kind: resource.AccessLogHTTP, Cluster: "als", LogName: "x",
			FlushInterval: 10 * time.Millisecond, BufferBytes: 16 << 10}}}, false)
	addr := serveHandler(t, h)
	body := strings.Repeat("Z", 300)
	cases := []struct {
		name, path, head string
		send             func(c net.Conn, br *bufio.Reader) error
	}{
		{"length body after 100-continue", "/length", "POST /length HTTP/1.1\r\nContent-Length: 300\r\nExpect: 100-continue\r\n",
			func(c net.Conn, br *bufio.Reader) error {
				if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
					return fmt.Errorf("interim response %q, %v", line, err)
				}
				br.ReadString('\n')
				_, err := io.WriteString(c, body)
				return err
			}},
		{"chunked body in later writes", "/chunked", "POST /chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
			func(c net.Conn, _ *bufio.Reader) error {
				for range 3 {
					time.Sleep(20 * time.Millisecond)
					if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(body), body); err != nil {
						return err
					}
				}
				_, err := io.WriteString(c, "0\r\n\r\n")
				return err
			}},
		{"upgraded stream", "/ws", "GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n",
			func(c net.Conn, br *bufio.Reader) error {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					return err
				}
				if resp.StatusCode != 101 {
					return fmt.Errorf("upgrade answered %d", resp.StatusCode)
				}
				if _, err := io.WriteString(c, body); err != nil {
					return err
				}
				echo := make([]byte, len(body))
				if _, err := io.ReadFull(br, echo); err != nil {
					return err
				}
				return c.Close()
			}},
	}
	for i, tc := range cases {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		if _, err := io.WriteString(c, tc.head+"Host: the-real-host\r\nUser-Agent: the-real-agent\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if err := tc.send(c, br); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.path != "/ws" {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: answered %d", tc.name, resp.StatusCode)
			}
		}
		c.Close()
		r := col.wait(t, i+1)[i].GetRequest()
		if r.GetPath() != tc.path || r.GetAuthority() != "the-real-host" || r.GetUserAgent() != "the-real-agent" {
			t.Errorf("%s: logged path %q, authority %q, user-agent %q; want %q, the-real-host, the-real-agent",
				tc.name, r.GetPath(), r.GetAuthority(), r.GetUserAgent(), tc.path)
		}
	}
}

// TestIdleConnectionDropsLargeScratch: a connection waiting for its next
// request gives back its buffers and keeps the detached-head and
// access-log scratch only while they are small.
func TestIdleConnectionDropsLargeScratch(t *testing.T) {
	for _, tc := range []struct {
		size int
		kept bool
	}{{idleScratch, true}, {idleScratch + 1, false}, {64 << 10, false}} {
		hc := &h1conn{s: &stream{}}
		hc.takeBufs()
		hc.s.headBuf = make([]byte, 0, tc.size)
		hc.s.logBuf = make([]byte, 0, tc.size)
		hc.releaseBufs()
		if kept := hc.s.headBuf != nil; kept != tc.kept {
			t.Errorf("head scratch of %d bytes kept: %v, want %v", tc.size, kept, tc.kept)
		}
		if kept := hc.s.logBuf != nil; kept != tc.kept {
			t.Errorf("log scratch of %d bytes kept: %v, want %v", tc.size, kept, tc.kept)
		}
	}
}
