package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestTranslateGatewayGoldens runs every Gateway API golden input of
// package gateway through the whole offline pipeline — address assignment,
// the Gateway API translation, the xDS translation, which validates every
// emitted resource with ValidateAll — so each route kind and filter the
// gateway package compiles yields Envoy resources that stock Envoy
// accepts, not only a valid IR.
func TestTranslateGatewayGoldens(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("..", "..", "gateway", "testdata", "*", "*.in.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no gateway golden inputs (%v)", err)
	}
	kinds := map[string]bool{}
	for _, in := range ins {
		kinds[filepath.Base(filepath.Dir(in))] = true
		t.Run(strings.TrimSuffix(filepath.Base(in), ".in.yaml"), func(t *testing.T) {
			var out, errs bytes.Buffer
			if err := translateCmd([]string{"-f", in, "-type", "all"}, &out, &errs); err != nil {
				t.Fatalf("translate %s: %v\n%s", in, err, errs.String())
			}
			if out.Len() == 0 {
				t.Fatalf("translate %s printed nothing", in)
			}
		})
	}
	for _, k := range []string{"httproute", "grpcroute"} {
		if !kinds[k] {
			t.Errorf("no golden inputs for %s", k)
		}
	}
}
