package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// forward serves a loopback port of the calling process's namespace that
// carries TCP connections to the API server inside the lab, and writes
// Kubeconfig pointing at it: tools on this machine (kubectl, helm, tests)
// reach the lab without any address or route added outside it. The API
// server's certificate names 127.0.0.1, so TLS verifies end to end.
func (l *Lab) forward() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for the API server forward: %w", err)
	}
	target := l.cluster.Server[len("https://"):]
	l.fwd = &forwarder{ln: ln, conns: map[net.Conn]struct{}{}}
	go l.fwd.serve(l.Network.ControlPlane.Dial, target)
	l.Kubeconfig = filepath.Join(l.Dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: nodemesh-lab
  cluster:
    server: https://%s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: nodemesh-lab
  context:
    cluster: nodemesh-lab
    user: admin
current-context: nodemesh-lab
`, ln.Addr(), l.cluster.CAFile, l.cluster.Token)
	if err := os.WriteFile(l.Kubeconfig, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// forwarder copies connections accepted on ln to target.
type forwarder struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

func (f *forwarder) serve(dial func(context.Context, string, string) (net.Conn, error), target string) {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.pipe(c, dial, target)
	}
}

// track registers c so close can end it; false once closed.
func (f *forwarder) track(c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !add {
		delete(f.conns, c)
		return true
	}
	if f.done {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) pipe(c net.Conn, dial func(context.Context, string, string) (net.Conn, error), target string) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, err := dial(ctx, "tcp", target)
	cancel()
	if err != nil {
		return
	}
	defer up.Close()
	if !f.track(c, true) {
		return
	}
	defer f.track(c, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

// close stops accepting and ends every forwarded connection (watches
// would otherwise outlive the lab).
func (f *forwarder) close() {
	f.ln.Close()
	f.mu.Lock()
	f.done = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
}
