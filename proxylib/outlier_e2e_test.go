package proxylib_test

import (
	"net/http"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestOutlierDetectionEjectsFailingEndpoint: of two endpoints, one answers
// every request with 503. With consecutive_5xx 2 (and a base ejection
// time far longer than the test), once it failed twice in a row it gets
// no more requests: the next 40 all reach the healthy one. The 503s are
// counted per attempt as the proxy relays them.
func TestOutlierDetectionEjectsFailingEndpoint(t *testing.T) {
	good := startBackend(t, "good", nil)
	bad := startBackend(t, "bad", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "bad")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "b"))),
		edsCluster(t, "b", false, func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{
				Consecutive_5Xx:    wrapperspb.UInt32(2),
				BaseEjectionTime:   durationpb.New(time.Hour),
				MaxEjectionPercent: wrapperspb.UInt32(50),
			}
		}), cla("b", good.addr, bad.addr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "")
	c := client()
	// Round robin alternates, so within these requests (and the one
	// waitServing sent) the bad endpoint answers twice.
	badSeen := 0
	for range 10 {
		code, h, _ := do(t, c, "GET", "http://"+addr+"/", "", nil, nil)
		if h.Get("X-Backend") == "bad" {
			badSeen++
			if code != 503 {
				t.Fatalf("bad endpoint answered %d", code)
			}
		}
	}
	if badSeen == 0 {
		t.Fatal("the bad endpoint answered none of 10 requests: it was never in the rotation")
	}
	for i := range 40 {
		code, h, _ := do(t, c, "GET", "http://"+addr+"/", "", nil, nil)
		if code != 200 || h.Get("X-Backend") != "good" {
			t.Fatalf("request %d after ejection: %d from %q, want 200 from good", i, code, h.Get("X-Backend"))
		}
	}
}
