package translator

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/nodemesh/nodemesh/internal/golden"
)

// TestEveryListenerStatesItsLimits translates every golden input, Gateway
// and L7 policy, and checks that every listener carries its buffer limit
// and every connection manager its head limits and timeouts, with the
// values the package comment documents.
func TestEveryListenerStatesItsLimits(t *testing.T) {
	inputs := golden.Inputs(t, "testdata", ".in.yaml", ".out.yaml")
	inputs = append(inputs, golden.Inputs(t, filepath.Join("testdata", "policy"), ".in.yaml", ".out.yaml")...)
	listeners, hcms := 0, 0
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := decodeIR(data)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Translate(cfg)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		for _, l := range res.Listeners {
			listeners++
			if got := l.GetPerConnectionBufferLimitBytes(); got.GetValue() != 32768 {
				t.Errorf("%s: listener %s: per_connection_buffer_limit_bytes %v, want 32768", in, l.GetName(), got)
			}
			for _, fc := range l.GetFilterChains() {
				for _, f := range fc.GetFilters() {
					var h hcmv3.HttpConnectionManager
					if f.GetTypedConfig().UnmarshalTo(&h) != nil {
						continue // not a connection manager
					}
					hcms++
					common := h.GetCommonHttpProtocolOptions()
					if common.GetIdleTimeout().AsDuration() != time.Hour || common.GetMaxHeadersCount().GetValue() != 100 ||
						h.GetMaxRequestHeadersKb().GetValue() != 60 || h.GetStreamIdleTimeout().AsDuration() != 5*time.Minute ||
						h.GetRequestHeadersTimeout().AsDuration() != 10*time.Second {
						t.Errorf("%s: listener %s: limits %v / kb %v / stream idle %v / headers timeout %v", in, l.GetName(),
							common, h.GetMaxRequestHeadersKb(), h.GetStreamIdleTimeout(), h.GetRequestHeadersTimeout())
					}
				}
			}
		}
	}
	if listeners == 0 || hcms == 0 {
		t.Fatalf("checked %d listeners and %d connection managers", listeners, hcms)
	}
}
