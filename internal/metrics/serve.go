package metrics

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors every binary exports (go_*, process_*).
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Limits of the metrics endpoint: a scrape is one small GET.
const (
	readHeaderTimeout = 5 * time.Second
	// writeTimeout bounds one scrape, so a client that stops reading
	// cannot hold a gathering goroutine for ever.
	writeTimeout   = 30 * time.Second
	maxHeaderBytes = 16 << 10
	// maxScrapes is how many scrapes run at once; more wait in line
	// (promhttp answers 503 to those that wait too long).
	maxScrapes = 4
)

// Listen opens the metrics listener on addr (host:port). An empty addr
// returns a nil listener: metrics are off. When addr is the binary's
// default (not asked for) and already taken — several agents of a test
// or demo share one network namespace — metrics are off with a warning
// instead of failing the start; an address the user gave must be served.
func Listen(addr string, isDefault bool, log *slog.Logger) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if isDefault && errors.Is(err, syscall.EADDRINUSE) {
			log.Warn("the default metrics address is taken; metrics are off (set --metrics-address)", "address", addr)
			return nil, nil
		}
		return nil, fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	return l, nil
}

// FlagIsDefault reports whether the named flag of fs was left at its
// default (not given on the command line).
func FlagIsDefault(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return !set
}

// Handler returns the handler of GET /metrics for g (the Prometheus text
// format, or OpenMetrics when the scraper asks for it).
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Exposition(g, log))
	return mux
}

// Exposition returns the handler that writes g's metrics, whatever the
// request's path, for callers that mount it elsewhere (the proxy's admin
// endpoint serves it at Envoy's /stats/prometheus).
func Exposition(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            slogErrors{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
		Timeout:             writeTimeout - time.Second,
		EnableOpenMetrics:   true,
	})
}

// Serve serves Handler(g) on l until ctx ends. It returns nil on a clean
// stop.
func Serve(ctx context.Context, l net.Listener, g prometheus.Gatherer, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           Handler(g, log),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serving metrics: %w", err)
	}
}

// slogErrors adapts the logger to promhttp's error log: a collector that
// fails is logged, and the scrape carries what the others gathered.
type slogErrors struct{ log *slog.Logger }

func (s slogErrors) Println(v ...any) { s.log.Warn("gathering metrics", "error", fmt.Sprint(v...)) }
