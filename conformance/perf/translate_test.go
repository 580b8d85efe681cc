package perf

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// pipeline is the agent's path from a snapshot to a servable xDS
// snapshot: the Gateway API translation (IR and status), then the
// publisher — IR validation, Envoy translation and the xDS server's
// versions. No proxy is connected, so nothing is sent.
type pipeline struct {
	srv *server.Server
	gw  *gateway.Translator
	pub *publish.Publisher
}

func newPipeline() *pipeline {
	srv := server.New(server.WithLogger(slog.New(slog.DiscardHandler)))
	return &pipeline{srv: srv, gw: gateway.NewTranslator(), pub: publish.New(srv)}
}

func (p *pipeline) run(tb testing.TB, snap *input.Snapshot) (*gateway.Result, dataplane.Publication) {
	res := p.gw.Translate(snap, gateway.Options{Addresses: scenarioAddrs})
	pub, err := p.pub.Publish(context.Background(), res.Config)
	if err != nil {
		tb.Fatal(err)
	}
	return res, pub
}

func (p *pipeline) stop() { p.srv.Stop(0) }

// BenchmarkSnapshot is the whole way from Gateway API objects to a
// servable xDS snapshot, everything cold: a new translator, publisher and
// xDS server for every run. It reports the Envoy routes the snapshot
// holds and, from 1000 HTTPRoutes up, the peak heap of one run.
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range scenarioSizes {
		snap := scenario(n)
		b.Run(fmt.Sprintf("httproutes=%d", n), func(b *testing.B) {
			p := newPipeline()
			res, _ := p.run(b, snap)
			p.stop()
			routes := envoyRoutes(b, res)
			b.ReportAllocs()
			start := readUsage()
			for b.Loop() {
				b.StopTimer()
				p := newPipeline()
				b.StartTimer()
				p.run(b, snap)
				b.StopTimer()
				p.stop()
				b.StartTimer()
			}
			reportUsage(b, start)
			b.ReportMetric(float64(routes), "envoy-routes")
			if n >= 1000 {
				peak, retained := heapOfOneRun(b, snap)
				b.ReportMetric(peak/(1<<20), "peak-heap-MiB")
				b.ReportMetric(retained/(1<<20), "retained-MiB")
			}
		})
	}
}

// envoyRoutes counts the routes the translation emits and checks the
// input is what the benchmark claims: every HTTPRoute accepted on both
// listeners.
func envoyRoutes(b *testing.B, res *gateway.Result) int {
	for _, r := range res.Routes {
		if len(r.Status.Parents) != 1 || len(r.Status.Parents[0].Conditions) != 2 {
			b.Fatalf("HTTPRoute %s: unexpected status %+v", r.Key, r.Status)
		}
		for _, c := range r.Status.Parents[0].Conditions {
			if c.Status != "True" {
				b.Fatalf("HTTPRoute %s: %s=%s: %s", r.Key, c.Type, c.Status, c.Message)
			}
		}
	}
	n := 0
	for _, l := range res.Config.Listeners {
		for _, ch := range l.Chains {
			for _, vh := range ch.Routes.VirtualHosts {
				n += len(vh.Routes)
			}
		}
	}
	if len(res.Config.Listeners) != 2 {
		b.Fatalf("%d listeners, want 2", len(res.Config.Listeners))
	}
	return n
}

// heapOfOneRun runs one cold translation while sampling the heap, and
// returns the largest heap seen and the heap still live once it is done
// (the result and the server's state, as an agent holds them).
func heapOfOneRun(b *testing.B, snap *input.Snapshot) (peak, retained float64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	var max atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if v := read(); v > max.Load() {
				max.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	base := read()
	p := newPipeline()
	res, _ := p.run(b, snap)
	close(stop)
	<-done
	runtime.GC()
	retained = float64(read() - min(read(), base))
	runtime.KeepAlive(res)
	p.stop()
	return float64(max.Load()), retained
}

// BenchmarkOneRouteEdit is one HTTPRoute edit along the agent's path,
// with everything before it translated and published: the incremental
// Gateway API translation, then IR validation, Envoy translation and the
// xDS server's versions of the new snapshot.
func BenchmarkOneRouteEdit(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		snap := scenario(n)
		b.Run(fmt.Sprintf("httproutes=%d", n), func(b *testing.B) {
			p := newPipeline()
			defer p.stop()
			p.run(b, snap)
			edited := *snap
			edited.HTTPRoutes = append([]*gwv1.HTTPRoute(nil), snap.HTTPRoutes...)
			orig := snap.HTTPRoutes[0]
			b.ReportAllocs()
			start := readUsage()
			i := 0
			for b.Loop() {
				r := orig.DeepCopy()
				r.Spec.Rules[0].Filters[0].RequestHeaderModifier.Set[0].Value = fmt.Sprintf("edit-%d", i)
				edited.HTTPRoutes[0] = r
				i++
				if _, pub := p.run(b, &edited); !pub.Changed {
					b.Fatal("the edit changed nothing")
				}
			}
			reportUsage(b, start)
		})
	}
}
