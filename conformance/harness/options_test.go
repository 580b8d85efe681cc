package main

import (
	"reflect"
	"testing"
)

// -event-loops reaches the lab as the chart's proxy.eventLoops, 0 (a
// goroutine per connection) included; without it (-1) the lab's values
// are left alone.
func TestChartValuesCarryEventLoops(t *testing.T) {
	if v := chartValues(options{eventLoops: -1}); v != nil {
		t.Fatalf("no -event-loops: %v, want nil", v)
	}
	want0 := map[string]any{"proxy": map[string]any{"eventLoops": 0}}
	if v := chartValues(options{eventLoops: 0}); !reflect.DeepEqual(v, want0) {
		t.Fatalf("-event-loops 0: %v, want %v", v, want0)
	}
	want := map[string]any{"proxy": map[string]any{"eventLoops": 2}}
	if v := chartValues(options{eventLoops: 2}); !reflect.DeepEqual(v, want) {
		t.Fatalf("-event-loops 2: %v, want %v", v, want)
	}
}
