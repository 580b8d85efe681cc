package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/nodemesh/nodemesh/proxylib"
)

// TestChartWorkersBound: the chart's proxy.workers and proxy.eventLoops
// schemas allow exactly the counts --workers and --event-loops accept, so
// a value helm renders never makes the proxy exit at start.
func TestChartWorkersBound(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "charts", "nodemesh", "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	type bound struct {
		Type    any      `json:"type"`
		Minimum *float64 `json:"minimum"`
		Maximum *float64 `json:"maximum"`
		Pattern string   `json:"pattern"`
	}
	var schema struct {
		Properties struct {
			Proxy struct {
				Properties map[string]bound `json:"properties"`
			} `json:"proxy"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value    string
		typ      any
		min, max float64
		pattern  string
	}{
		{"workers", "integer", 1, maxWorkers, ""},
		// --event-loops also takes auto, and nothing else but a count.
		{"eventLoops", []any{"integer", "string"}, 0, proxylib.MaxEventLoops, "^auto$"},
	} {
		b, ok := schema.Properties.Proxy.Properties[tc.value]
		if !ok {
			t.Errorf("values.schema.json has no proxy.%s", tc.value)
			continue
		}
		if !reflect.DeepEqual(b.Type, tc.typ) || b.Minimum == nil || *b.Minimum != tc.min || b.Maximum == nil || *b.Maximum != tc.max || b.Pattern != tc.pattern {
			t.Errorf("proxy.%s schema: type %v, minimum %v, maximum %v, pattern %q; want %v %v..%v, pattern %q",
				tc.value, b.Type, deref(b.Minimum), deref(b.Maximum), b.Pattern, tc.typ, tc.min, tc.max, tc.pattern)
		}
		var f loopsFlag
		if tc.pattern == "^auto$" && f.Set("auto") != nil {
			t.Errorf("--event-loops refuses auto, which proxy.%s allows", tc.value)
		}
	}
}

func deref(f *float64) any {
	if f == nil {
		return "none"
	}
	return *f
}
