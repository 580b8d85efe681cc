package hcm

import (
	"testing"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
)

// A circuit breaker overflow is Envoy's UO everywhere flags appear: access
// log entries and local reply mappers' response_flag_filter.
func TestOverflowFlag(t *testing.T) {
	if upOverflow.flag() != flagUO || flagNames["UO"] != flagUO {
		t.Fatal("overflow does not map to the UO flag")
	}
	if f := responseFlags(flagUO); f != accesslog.UpstreamOverflow {
		t.Fatalf("access log flags %v", f)
	}
	if code, body := failBody(upOverflow); code != 503 || string(body) != "upstream connect error or disconnect/reset before headers. reset reason: overflow" {
		t.Fatalf("overflow reply %d %q", code, body)
	}
}
