package spiretest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nodemesh/nodemesh/internal/child"
)

// waitSocket waits until something accepts connections on the Unix socket
// at path (SPIRE opens its API sockets only once it is ready: the server
// after its CA is prepared, the agent after node attestation), the
// process exits, or ctx ends. A starting program announces readiness in
// no other way, so this polls.
func waitSocket(ctx context.Context, p *child.Process, path string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited before it was ready (%v); its log ends:\n%s", p.Name(), p.Err(), p.LogTail(30))
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to listen on %s: %w; its log ends:\n%s", p.Name(), path, ctx.Err(), p.LogTail(30))
		case <-tick.C:
		}
	}
}

// freePort returns a loopback TCP port nothing listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	a, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("finding a free port: not a TCP address")
	}
	return a.Port, nil
}
