package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestChartWorkersBound: the chart's proxy.workers schema allows exactly
// the counts --workers accepts, so a value helm renders never makes the
// proxy exit at start.
func TestChartWorkersBound(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "charts", "nodemesh", "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Proxy struct {
				Properties struct {
					Workers *struct {
						Type    string   `json:"type"`
						Minimum *float64 `json:"minimum"`
						Maximum *float64 `json:"maximum"`
					} `json:"workers"`
				} `json:"properties"`
			} `json:"proxy"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	w := schema.Properties.Proxy.Properties.Workers
	if w == nil {
		t.Fatal("values.schema.json has no proxy.workers")
	}
	if w.Type != "integer" || w.Minimum == nil || *w.Minimum != 1 || w.Maximum == nil || *w.Maximum != maxWorkers {
		t.Errorf("proxy.workers schema: type %q, minimum %v, maximum %v; want integer 1..%d", w.Type, deref(w.Minimum), deref(w.Maximum), maxWorkers)
	}
}

func deref(f *float64) any {
	if f == nil {
		return "none"
	}
	return *f
}
