package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
)

// warnings records log records at warning level and above.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	w.msgs = append(w.msgs, r.Message)
	w.mu.Unlock()
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// TestRolloutLogsNoWarnings: rollouts that add clusters, as every route
// change to a new Service does, are normal operation and log no warning,
// in either protocol. (The cache drops the proxy's request that still
// names the previous endpoints; the next request names the new set.)
func TestRolloutLogsNoWarnings(t *testing.T) {
	w := &warnings{}
	s, path := startServer(t, WithLogger(slog.New(w)))
	sotw := dialConnected(t, s, path, proxyOptions{NodeID: "sotw"})
	delta := dialConnected(t, s, path, proxyOptions{NodeID: "delta", Delta: true})
	for i := range 4 {
		c := fmt.Sprintf("c/%d", i)
		waitAck(t, s, update(t, s, resources(t, spec{clusters: []string{c}, route: c})))
	}
	requireNoViolations(t, sotw, delta)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.msgs) > 0 {
		t.Errorf("%d warnings during rollouts, first %q", len(w.msgs), w.msgs[0])
	}
}
