package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
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
		Type    string   `json:"type"`
		Minimum *float64 `json:"minimum"`
		Maximum *float64 `json:"maximum"`
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
		min, max float64
	}{
		{"workers", 1, maxWorkers},
		{"eventLoops", 0, maxWorkers},
	} {
		b, ok := schema.Properties.Proxy.Properties[tc.value]
		if !ok {
			t.Errorf("values.schema.json has no proxy.%s", tc.value)
			continue
		}
		if b.Type != "integer" || b.Minimum == nil || *b.Minimum != tc.min || b.Maximum == nil || *b.Maximum != tc.max {
			t.Errorf("proxy.%s schema: type %q, minimum %v, maximum %v; want integer %v..%v", tc.value, b.Type, deref(b.Minimum), deref(b.Maximum), tc.min, tc.max)
		}
	}
}

func deref(f *float64) any {
	if f == nil {
		return "none"
	}
	return *f
}
