package proxylib_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func weighted(weights map[string]uint32) *routev3.Route_Route {
	var cs []*routev3.WeightedCluster_ClusterWeight
	for _, n := range []string{"a", "b", "c"} {
		if w, ok := weights[n]; ok {
			cs = append(cs, &routev3.WeightedCluster_ClusterWeight{Name: n, Weight: wrapperspb.UInt32(w)})
		}
	}
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
		WeightedClusters: &routev3.WeightedCluster{Clusters: cs}}}}
}

func TestWeightedSplit(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", &routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: weighted(map[string]uint32{"a": 70, "b": 30, "c": 0})}}}),
		edsCluster(t, "a", false, nil), cla("a", a.addr), edsCluster(t, "b", false, nil), cla("b", b.addr),
		edsCluster(t, "c", false, nil), cla("c", c.addr))
	startProxy(t, x.sock)
	url := "http://" + addr + "/"
	waitServing(t, url, "x")
	cl := client()
	counts := map[string]int{}
	const n = 2000
	for i := 0; i < n; i++ {
		_, _, body := do(t, cl, "GET", url, "x", nil, nil)
		counts[decodeEcho(t, body).Backend]++
	}
	if counts["c"] != 0 {
		t.Errorf("weight 0 cluster got %d requests", counts["c"])
	}
	// Binomial standard deviation at n=2000, p=0.7 is ~20; allow 5 sigma.
	if got := counts["a"]; math.Abs(float64(got)-0.7*n) > 100 {
		t.Errorf("split %v, want about 70/30", counts)
	}
}

func TestRoundRobinAndLeastRequest(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "rr"), prefixRoute("/lr", "lr"))),
		edsCluster(t, "rr", false, nil), cla("rr", a.addr, b.addr))
	startProxy(t, x.sock)
	url := "http://" + addr + "/"
	waitServing(t, url, "x")
	cl := client()
	var seq []string
	for i := 0; i < 10; i++ {
		_, _, body := do(t, cl, "GET", url, "x", nil, nil)
		seq = append(seq, decodeEcho(t, body).Backend)
	}
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] {
			t.Fatalf("round robin repeated a host: %v", seq)
		}
	}
}

func TestBodiesAndFraming(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	sum := sha256.Sum256(big)
	be := startBackend(t, "stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x te=%v cl=%d", n, h.Sum(nil), r.TransferEncoding, r.ContentLength)
		case "/chunked":
			fl := w.(http.Flusher)
			for i := 0; i < 5; i++ {
				fmt.Fprintf(w, "part%d;", i)
				fl.Flush()
			}
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			_, _ = w.Write(big)
		case "/head":
			w.Header().Set("Content-Length", "1234")
		}
	}))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))),
		edsCluster(t, "s", false, nil), cla("s", be.addr))
	startProxy(t, x.sock)
	url := "http://" + addr
	waitServing(t, url+"/head", "x")
	cl := client()

	t.Run("content-length upload", func(t *testing.T) {
		_, _, body := do(t, cl, "POST", url+"/upload", "x", nil, bytes.NewReader(big))
		if want := fmt.Sprintf("%d %x te=[] cl=%d", len(big), sum, len(big)); body != want {
			t.Fatalf("got %q want %q", body, want)
		}
	})
	t.Run("chunked upload", func(t *testing.T) {
		_, _, body := do(t, cl, "POST", url+"/upload", "x", nil, io.MultiReader(bytes.NewReader(big[:1000]), bytes.NewReader(big[1000:])))
		if want := fmt.Sprintf("%d %x te=[chunked] cl=-1", len(big), sum); body != want {
			t.Fatalf("got %q want %q", body, want)
		}
	})
	t.Run("chunked response", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if len(resp.TransferEncoding) != 1 || string(b) != "part0;part1;part2;part3;part4;" {
			t.Fatalf("te %v body %q", resp.TransferEncoding, b)
		}
	})
	t.Run("big response", func(t *testing.T) {
		_, _, body := do(t, cl, "GET", url+"/big", "x", nil, nil)
		if sha256.Sum256([]byte(body)) != sum {
			t.Fatalf("body of %d bytes differs", len(body))
		}
	})
	t.Run("head", func(t *testing.T) {
		status, h, body := do(t, cl, "HEAD", url+"/head", "x", nil, nil)
		if status != 200 || h.Get("Content-Length") != "1234" || body != "" {
			t.Fatalf("HEAD: %d %v %q", status, h, body)
		}
		// The connection must still be usable.
		if status, _, _ := do(t, cl, "GET", url+"/head", "x", nil, nil); status != 200 {
			t.Fatalf("after HEAD: %d", status)
		}
	})
	t.Run("expect 100-continue", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("interim response %q %v", line, err)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(string(b), "5 ") {
			t.Fatalf("body %q", b)
		}
	})
	t.Run("smuggling rejected", func(t *testing.T) {
		for _, raw := range []string{
			"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
		} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(c, raw)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			c.Close()
			if err != nil || resp.StatusCode != 400 {
				t.Errorf("%q: %v %v", raw, resp, err)
			}
		}
	})
	t.Run("http/1.0 rejected", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET / HTTP/1.0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 426 {
			t.Fatalf("%v %v", resp, err)
		}
	})
}

func TestRouteTimeout(t *testing.T) {
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
	}))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*",
			&routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/fast"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "s"},
					Timeout: durationpb.New(100 * time.Millisecond)}}},
			&routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "s"},
					Timeout: durationpb.New(0)}}})),
		edsCluster(t, "s", false, nil), cla("s", slow.addr))
	startProxy(t, x.sock)
	url := "http://" + addr
	waitServing(t, url+"/fast", "x")
	cl := client()
	start := time.Now()
	status, _, body := do(t, cl, "GET", url+"/fast", "x", nil, nil)
	if status != 504 || body != "upstream request timeout" || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("timeout route: %d %q after %v", status, body, time.Since(start))
	}
	if status, h, _ := do(t, cl, "GET", url+"/", "x", nil, nil); status != 200 || h.Get("X-Envoy-Expected-Rq-Timeout-Ms") != "" {
		t.Fatalf("disabled timeout: %d %v", status, h)
	}
}
