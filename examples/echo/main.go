// Command echo is the quickstart's demo backend: it answers every request
// with a JSON description of it (see internal/echo).
package main

import (
	"flag"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/nodemesh/nodemesh/internal/echo"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to serve on")
	name := flag.String("name", "echo", "backend name reported in every response")
	flag.Parse()
	srv := &http.Server{Addr: *listen, Handler: echo.Handler(*name), ReadHeaderTimeout: 10 * time.Second}
	slog.Info("echo backend serving", "address", *listen, "name", *name)
	if err := srv.ListenAndServe(); err != nil {
		slog.Error("serving", "err", err)
		os.Exit(1)
	}
}
