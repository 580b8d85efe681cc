package main

import (
	"testing"

	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/xds/accesslog"
)

// TestAccessLogMetrics: with the access-log service in place, its entry
// counts are exported (flows, skipped, truncated).
func TestAccessLogMetrics(t *testing.T) {
	reg, _ := newAgentMetrics(&metricSources{als: accesslog.New(flow.NewStore(), nil)})
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, f := range fams {
		got[f.GetName()] = len(f.GetMetric())
	}
	if got["nodemesh_accesslog_entries_total"] != 2 || got["nodemesh_accesslog_truncated_entries_total"] != 1 {
		t.Errorf("access-log metrics: %v entries series, %v truncated", got["nodemesh_accesslog_entries_total"], got["nodemesh_accesslog_truncated_entries_total"])
	}
}
