package main

import (
	"reflect"
	"testing"
)

// -event-loops reaches the lab as the chart's proxy.eventLoops; without
// it the lab's values are left alone.
func TestChartValuesCarryEventLoops(t *testing.T) {
	if v := chartValues(options{}); v != nil {
		t.Fatalf("no -event-loops: %v, want nil", v)
	}
	want := map[string]any{"proxy": map[string]any{"eventLoops": 2}}
	if v := chartValues(options{eventLoops: 2}); !reflect.DeepEqual(v, want) {
		t.Fatalf("-event-loops 2: %v, want %v", v, want)
	}
}
