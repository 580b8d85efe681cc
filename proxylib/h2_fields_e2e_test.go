package proxylib_test

import (
	"net/http"
	"slices"
	"testing"
)

// TestH2ResponseFieldsAsSent: a response relayed to an HTTP/2 client
// carries the upstream's content-type and date once, as sent, and the
// proxy invents neither when the upstream sent none, as over HTTP/1.1.
// The HTTP/2 server library adds a sniffed content-type and its own date
// unless told not to, which doubled both fields (two content-types with
// different values). Local replies carry one of each too.
func TestH2ResponseFieldsAsSent(t *testing.T) {
	const date = "Mon, 01 Jan 2024 00:00:00 GMT"
	be := startBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/up/typed":
			w.Header().Set("Content-Type", "application/x-typed")
			w.Header().Set("Date", date)
		case "/up/bare":
			w.Header()["Date"] = nil // Go's server adds none
		}
		w.Write([]byte("<html><body>sniffable</body></html>"))
	}))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/up", "a"))),
		edsCluster(t, "a", false, nil), cla("a", be.addr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/up/typed", "")

	get := func(t *testing.T, c *http.Client, path string) http.Header {
		t.Helper()
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	h1, h2 := client(), h2cClient()
	for _, tc := range []struct {
		path string
		want map[string][]string // nil: as over HTTP/1.1
	}{
		{"/up/typed", map[string][]string{"Content-Type": {"application/x-typed"}, "Date": {date}}},
		{"/up/bare", nil},
		{"/none", nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			got := get(t, h2, tc.path)
			want := tc.want
			if want == nil {
				h := get(t, h1, tc.path)
				want = map[string][]string{"Content-Type": h["Content-Type"], "Date": h["Date"]}
			}
			for _, name := range []string{"Content-Type", "Date"} {
				if name == "Date" && tc.want == nil && len(want[name]) == 1 {
					// A date the proxy makes itself may tick between the
					// two requests: one value is what counts.
					if len(got[name]) != 1 {
						t.Errorf("HTTP/2 %s: %q, want one value", name, got[name])
					}
					continue
				}
				if !slices.Equal(got[name], want[name]) {
					t.Errorf("HTTP/2 %s: %q, want %q", name, got[name], want[name])
				}
			}
		})
	}
}
