package workload

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// clientArgsEnv makes the test binary run the mesh client instead of the
// tests: the client must run as a process inside the workload's network
// namespace, where the server is, as the suite runs it through exec.
const clientArgsEnv = "NODEMESH_TEST_MESH_CLIENT_ARGS"

func TestMain(m *testing.M) {
	if a := os.Getenv(clientArgsEnv); a != "" {
		if err := Run(context.Background(), append([]string{"mesh-client"}, strings.Split(a, "\x1f")...), os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// field finds the first "Key=value" of the output, as the suite's parser
// does (sigs.k8s.io/gateway-api/conformance/utils/echo).
func field(out, key string) string {
	m := regexp.MustCompile(key + "=(.*)").FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestMeshEcho runs the mesh echo with the conformance manifest's
// arguments and its client in the same namespace, and checks what the
// suite reads: the status code, the backend's Pod name, the request
// headers the server saw (including a Host override), the response
// headers, one block per request with --count, redirects not followed,
// gRPC, TLS on the --tls port and raw TCP echo.
func TestMeshEcho(t *testing.T) {
	t.Setenv(PortsEnv, "")
	t.Setenv("HOSTNAME", "echo-v1-abc")
	w := start(t, "mesh-echo", "--tcp=9090", "--port=8080", "--grpc=7070", "--port=8443", "--tls=8443", "--crt=/nonexistent.crt", "--key=/nonexistent.key")
	ip := w.IPv4.String()
	client := func(args ...string) (string, error) {
		t.Helper()
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := w.Command(ctx, exe)
		cmd.Env = append(os.Environ(), clientArgsEnv+"="+strings.Join(args, "\x1f"))
		out, err := cmd.Output()
		return string(out), err
	}
	// Every server is up before the checks (start waits for the first).
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []string{"8080", "8443", "7070", "9090"} {
		for {
			c, err := w.Dial(context.Background(), "tcp", net.JoinHostPort(ip, port))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("port %s: %v", port, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	out, err := client("http://"+ip+":8080/some/path?q=1", "--method=PUT", "-H", "X-Echo-Set:one", "-H", "Host:echo-v2")
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	for k, want := range map[string]string{
		"StatusCode": "200", "Hostname": "echo-v1-abc", "Method": "PUT", "URL": "/some/path?q=1", "Host": "echo-v2", "Proto": "HTTP/1.1",
	} {
		if got := field(out, k); got != want {
			t.Errorf("%s = %q, want %q; output:\n%s", k, got, want, out)
		}
	}
	for _, want := range []string{"[0 body] RequestHeader=X-Echo-Set:one\n", "[0 body] RequestHeader=Host:echo-v2\n", "[0] ResponseHeader=Content-Type:text/plain\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in output:\n%s", want, out)
		}
	}

	// --count: one block per request, separated by an empty line.
	out, err = client("http://"+ip+":8080/", "--count=3")
	if err != nil {
		t.Fatalf("client --count: %v\n%s", err, out)
	}
	blocks := strings.Split(strings.TrimSpace(out), "\n\n")
	if len(blocks) != 3 {
		t.Fatalf("%d blocks for --count=3:\n%s", len(blocks), out)
	}
	for i, b := range blocks {
		if field(b, "StatusCode") != "200" || field(b, "Hostname") != "echo-v1-abc" {
			t.Errorf("block %d:\n%s", i, b)
		}
	}

	// gRPC: status 200 for OK, and the same lines from the server.
	out, err = client("grpc://"+ip+":7070", "-H", "X-Grpc-Md:two")
	if err != nil {
		t.Fatalf("client grpc: %v\n%s", err, out)
	}
	if field(out, "StatusCode") != "200" || field(out, "Hostname") != "echo-v1-abc" || field(out, "Proto") != "GRPC" ||
		!strings.Contains(out, "RequestHeader=x-grpc-md:two\n") || field(out, "URL") == "" {
		t.Errorf("grpc output:\n%s", out)
	}
	// A refused connection fails the command: the suite retries.
	if out, err := client("http://" + ip + ":8081/"); err == nil {
		t.Errorf("client to a closed port succeeded:\n%s", out)
	}

	// TLS on the --tls port (a certificate made at start, the named files
	// being absent), and raw TCP echo.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: w.Dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get("https://" + ip + ":8443/tls")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.TLS == nil || field(string(b), "URL") != "/tls" {
		t.Errorf("https: tls %v, body %q", resp.TLS != nil, b)
	}
	c, err := w.Dial(context.Background(), "tcp", net.JoinHostPort(ip, "9090"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Errorf("tcp echo: %q, %v", got, err)
	}
}

// TestMeshClientArgs refuses what the client does not understand rather
// than ignoring it.
func TestMeshClientArgs(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"http://a", "http://b"},
		{"http://a", "--follow"},
		{"http://a", "-H", "no-colon"},
		{"http://a", "--count=0"},
		{"http://a", "--count=100001"},
		{"http://a", "-H"},
	} {
		if _, err := parseMeshClient(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	o, err := parseMeshClient([]string{"http://a/b", "--method", "POST", "-H", "Host: x", "--count=7"})
	if err != nil || o.method != "POST" || o.count != 7 || len(o.headers) != 1 || o.headers[0] != [2]string{"Host", "x"} {
		t.Errorf("parsed %+v, %v", o, err)
	}
}
