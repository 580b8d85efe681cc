package chart

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// renderValues renders the chart with values through Render, as the lab
// does, into a values file of the test's own.
func renderValues(t *testing.T, values map[string]any) (*Rendered, error) {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := helm(t, root)
	return Render(context.Background(), bin, filepath.Join(root, Dir), "nodemesh", "kube-system",
		filepath.Join(t.TempDir(), "values.json"), values)
}

// proxyArgs returns the args of the proxy DaemonSet's proxy container.
func proxyArgs(t *testing.T, r *Rendered) []string {
	t.Helper()
	spec, err := r.PodSpec("DaemonSet", "nodemesh-proxy")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range spec.Containers {
		if c.Name == "proxy" {
			return c.Args
		}
	}
	t.Fatalf("the proxy DaemonSet has no proxy container")
	return nil
}

// withPrefix returns the args that are flag or start with flag=.
func withPrefix(args []string, flag string) []string {
	var out []string
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			out = append(out, a)
		}
	}
	return out
}

// TestChartProxyWorkers: proxy.workers renders --workers=n (builtin) or
// --concurrency=n (envoy) for n > 1 and neither flag for the default 1.
func TestChartProxyWorkers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		engine  string
		workers any // nil: the chart's default
		want    []string
	}{
		{"builtin default", "builtin", nil, nil},
		{"builtin one", "builtin", 1, nil},
		{"builtin four", "builtin", 4, []string{"--workers=4"}},
		{"builtin maximum", "builtin", 256, []string{"--workers=256"}},
		{"envoy default", "envoy", nil, nil},
		{"envoy one", "envoy", 1, nil},
		{"envoy four", "envoy", 4, []string{"--concurrency=4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := map[string]any{"engine": tc.engine}
			if tc.workers != nil {
				proxy["workers"] = tc.workers
			}
			r, err := renderValues(t, map[string]any{"proxy": proxy})
			if err != nil {
				t.Fatal(err)
			}
			args := proxyArgs(t, r)
			got := append(withPrefix(args, "--workers"), withPrefix(args, "--concurrency")...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("worker flags %q, want %q; args %q", got, tc.want, args)
			}
		})
	}
}

// TestChartRefusesBadWorkers: the schema refuses counts nodemesh-proxy
// refuses (it exits on --workers outside 1..256) and non-integers, naming
// the value and the bound; Envoy's --concurrency from both proxy.workers
// and proxy.extraArgs fails the render instead of Envoy's start.
func TestChartRefusesBadWorkers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proxy map[string]any
		want  string
	}{
		{"zero", map[string]any{"workers": 0}, "at '/proxy/workers': minimum: got 0, want 1"},
		{"negative", map[string]any{"workers": -2}, "at '/proxy/workers': minimum: got -2, want 1"},
		{"above maximum", map[string]any{"workers": 257}, "at '/proxy/workers': maximum: got 257, want 256"},
		{"fraction", map[string]any{"workers": 2.5}, "at '/proxy/workers': got number, want integer"},
		{"string", map[string]any{"workers": "4"}, "at '/proxy/workers': got string, want integer"},
		{"envoy extraArgs --concurrency=n", map[string]any{"engine": "envoy", "workers": 2, "extraArgs": []string{"--concurrency=8"}}, "proxy.extraArgs also sets"},
		{"envoy extraArgs --concurrency", map[string]any{"engine": "envoy", "workers": 2, "extraArgs": []string{"--concurrency"}}, "proxy.extraArgs also sets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := renderValues(t, map[string]any{"proxy": tc.proxy}); err == nil {
				t.Fatalf("proxy %v rendered", tc.proxy)
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
	// A --concurrency of one's own is still allowed when the chart passes
	// none.
	r, err := renderValues(t, map[string]any{"proxy": map[string]any{"engine": "envoy", "extraArgs": []string{"--concurrency=8"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := withPrefix(proxyArgs(t, r), "--concurrency"); !slices.Equal(got, []string{"--concurrency=8"}) {
		t.Errorf("envoy --concurrency flags %q, want only extraArgs' one", got)
	}
}

// TestChartProxyEventLoops: proxy.eventLoops renders --event-loops=n for
// the builtin engine when it is a count, 0 included, and no flag for auto,
// the default (the proxy's own default then applies), nor on Envoy.
func TestChartProxyEventLoops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proxy map[string]any
		want  []string
	}{
		{"builtin default", map[string]any{"engine": "builtin"}, nil},
		{"builtin auto", map[string]any{"engine": "builtin", "eventLoops": "auto"}, nil},
		{"builtin auto with four workers", map[string]any{"engine": "builtin", "eventLoops": "auto", "workers": 4}, nil},
		{"builtin zero", map[string]any{"engine": "builtin", "eventLoops": 0}, []string{"--event-loops=0"}},
		{"builtin one", map[string]any{"engine": "builtin", "eventLoops": 1}, []string{"--event-loops=1"}},
		{"builtin four", map[string]any{"engine": "builtin", "eventLoops": 4}, []string{"--event-loops=4"}},
		{"builtin maximum", map[string]any{"engine": "builtin", "eventLoops": 256}, []string{"--event-loops=256"}},
		{"builtin four with one worker", map[string]any{"engine": "builtin", "eventLoops": 4, "workers": 1}, []string{"--event-loops=4"}},
		{"builtin zero with four workers", map[string]any{"engine": "builtin", "eventLoops": 0, "workers": 4}, []string{"--event-loops=0"}},
		{"envoy default", map[string]any{"engine": "envoy"}, nil},
		{"envoy zero", map[string]any{"engine": "envoy", "eventLoops": 0}, nil},
		{"envoy auto", map[string]any{"engine": "envoy", "eventLoops": "auto"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := renderValues(t, map[string]any{"proxy": tc.proxy})
			if err != nil {
				t.Fatal(err)
			}
			args := proxyArgs(t, r)
			if got := withPrefix(args, "--event-loops"); !slices.Equal(got, tc.want) {
				t.Errorf("event loop flags %q, want %q; args %q", got, tc.want, args)
			}
		})
	}
}

// TestChartRefusesBadEventLoops: the schema refuses counts nodemesh-proxy
// refuses (it exits on --event-loops outside 0..256 and auto) and other
// values;
// the render fails, naming both values, where the proxy would refuse the
// pair (--event-loops with --workers > 1) and where Envoy has no such
// option, rather than dropping the setting.
func TestChartRefusesBadEventLoops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proxy map[string]any
		want  string
	}{
		{"negative", map[string]any{"eventLoops": -1}, "at '/proxy/eventLoops': minimum: got -1, want 0"},
		{"above maximum", map[string]any{"eventLoops": 257}, "at '/proxy/eventLoops': maximum: got 257, want 256"},
		{"fraction", map[string]any{"eventLoops": 1.5}, "at '/proxy/eventLoops': got number, want integer"},
		{"string", map[string]any{"eventLoops": "4"}, "at '/proxy/eventLoops': '4' does not match pattern '^auto$'"},
		{"other word", map[string]any{"eventLoops": "max"}, "at '/proxy/eventLoops': 'max' does not match pattern '^auto$'"},
		{"with workers", map[string]any{"eventLoops": 1, "workers": 2}, "proxy.eventLoops > 0 and proxy.workers > 1 exclude each other"},
		{"with maximum workers", map[string]any{"eventLoops": 256, "workers": 256}, "proxy.eventLoops > 0 and proxy.workers > 1 exclude each other"},
		{"envoy", map[string]any{"engine": "envoy", "eventLoops": 1}, "proxy.eventLoops renders the builtin proxy's --event-loops, which Envoy does not have"},
		{"envoy with workers", map[string]any{"engine": "envoy", "eventLoops": 2, "workers": 2}, "which Envoy does not have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := renderValues(t, map[string]any{"proxy": tc.proxy}); err == nil {
				t.Fatalf("proxy %v rendered", tc.proxy)
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestRenderValuesPathWithComma: the values reach helm whatever their
// file's path holds (helm splits a --values argument on commas).
func TestRenderValuesPathWithComma(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Render(context.Background(), helm(t, root), filepath.Join(root, Dir), "nodemesh", "kube-system",
		filepath.Join(t.TempDir(), "a,b", "values.json"), map[string]any{"proxy": map[string]any{"eventLoops": 3}})
	if err != nil {
		t.Fatal(err)
	}
	if got := withPrefix(proxyArgs(t, r), "--event-loops"); !slices.Equal(got, []string{"--event-loops=3"}) {
		t.Fatalf("event loop flags %q, want the values' --event-loops=3", got)
	}
}
