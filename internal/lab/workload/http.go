package workload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nodemesh/nodemesh/internal/echo"
)

// serveHTTP serves h on every port until ctx ends, then shuts down.
func serveHTTP(ctx context.Context, name string, ports []int, h http.Handler, out io.Writer) error {
	ls, err := listen(ports)
	if err != nil {
		return err
	}
	return serveHTTPOn(ctx, name, ls, nil, h, out)
}

// serveHTTPOn serves h on the listeners (over TLS with tc when set) until
// ctx ends, then shuts down.
func serveHTTPOn(ctx context.Context, name string, ls []net.Listener, tc *tls.Config, h http.Handler, out io.Writer) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, TLSConfig: tc}
	errc := make(chan error, len(ls))
	for _, l := range ls {
		if tc != nil {
			fmt.Fprintf(out, "%s: serving HTTPS on %s\n", name, l.Addr())
			go func(l net.Listener) { errc <- srv.ServeTLS(l, "", "") }(l)
			continue
		}
		fmt.Fprintf(out, "%s: serving HTTP on %s\n", name, l.Addr())
		go func(l net.Listener) { errc <- srv.Serve(l) }(l)
	}
	select {
	case err := <-errc:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func runEcho(ctx context.Context, ports []int, _ []string, out io.Writer) error {
	name, _ := os.Hostname()
	if h := os.Getenv("HOSTNAME"); h != "" {
		name = h
	}
	return serveHTTP(ctx, "echo", ports, echo.Handler(name), out)
}

// DeathstarHandler answers like the deathstar of Cilium's Star Wars demo.
// The standalone demo (examples/starwars) serves it too.
func DeathstarHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/request-landing", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "Ship landed\n")
	})
	mux.HandleFunc("PUT /v1/exhaust-port", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "Panic: deathstar exploded\n")
	})
	mux.HandleFunc("GET /v1/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name": "Death Star", "model": "DS-1 Orbital Battle Station", "api": ["GET /v1", "POST /v1/request-landing", "PUT /v1/exhaust-port"]}`+"\n")
	})
	return mux
}

func runDeathstar(ctx context.Context, ports []int, _ []string, out io.Writer) error {
	return serveHTTP(ctx, "deathstar", ports, DeathstarHandler(), out)
}
