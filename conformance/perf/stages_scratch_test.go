package perf

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/server"
	"github.com/nodemesh/nodemesh/xds/translator"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cpu(b *testing.B, f func()) {
	b.ReportAllocs()
	start := cpuNow()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64((cpuNow()-start).Microseconds())/float64(b.N)/1000, "cpu-ms/op")
}

func BenchmarkScratchStages(b *testing.B) {
	snap := scenario(1000)
	res := gateway.Translate(snap, gateway.Options{Addresses: scenarioAddrs})
	out, _ := translator.New().Translate(res.Config)
	b.Run("gateway", func(b *testing.B) {
		cpu(b, func() { gateway.NewTranslator().Translate(snap, gateway.Options{Addresses: scenarioAddrs}) })
	})
	b.Run("irvalidate", func(b *testing.B) {
		cpu(b, func() {
			var v ir.Validator
			v.Validate(res.Config)
		})
	})
	b.Run("xdstranslate", func(b *testing.B) {
		cpu(b, func() { translator.New().Translate(res.Config) })
	})
	b.Run("server", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			s := server.New(server.WithLogger(slog.New(slog.DiscardHandler)))
			b.StartTimer()
			s.Update(context.Background(), out)
			b.StopTimer()
			s.Stop(0)
			b.StartTimer()
		}
	})
}
