package datapath_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// When one listener of the proxy's SO_REUSEPORT group closes (a proxy
// restart hands over to the new process's group; a group shrinks), no
// redirected connection is lost: those waiting in its accept queue move to
// another listener of the group (net.ipv4.tcp_migrate_req, which the
// datapath turns on in the node namespace), connections it accepted keep
// working, and new ones land on the listeners left.
func TestRedirectSurvivesOneReusePortListenerClosing(t *testing.T) {
	n := newNode(t, 2, false)
	n.policy(enforce(ingressOnly(ident(1)), redirectRow(ident(1), ident(0), model.Ingress)))
	// Listener 0 accepts nothing: what the kernel assigns it waits in
	// its queue until the listener closes.
	p, err := n.bed.StartProxy(testbed.ProxyConfig{Port: proxyPort, Listeners: 2, Identity: n.identityOf, Parked: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	to := n.addrs(1, appPort)[0]

	const conns = 24
	var cs []net.Conn
	for range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := n.w(0).Namespace.Dial(ctx, "tcp", to.String())
		cancel()
		if err != nil {
			t.Fatalf("redirected connect to %s: %v", to, err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	// Every connection is either accepted by listener 1 or queued on the
	// parked listener 0.
	queued := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := p.Queued(0)
		if err != nil {
			t.Fatal(err)
		}
		queued = q
		if int(p.Accepted())+q == conns || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := int(p.Accepted()) + queued; got != conns {
		t.Fatalf("%d accepted + %d queued on the parked listener, want %d in all", p.Accepted(), queued, conns)
	}
	if queued == 0 {
		t.Fatalf("all %d redirected connections went to listener 1; the group was not used", conns)
	}

	if err := p.CloseListener(0); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if err := greetAndEcho(c, fmt.Sprintf("connection %d after listener 0 closed", i)); err != nil {
			t.Fatalf("connection %d (of %d queued on the closed listener): %v", i, queued, err)
		}
	}
	for i := range 8 {
		c := mustConnect(t, n.w(0).Namespace, to)
		if err := c.Echo([]byte("new connection"), 3*time.Second); err != nil {
			t.Fatalf("new connection %d after listener 0 closed: %v", i, err)
		}
	}
	for _, r := range p.Seen() {
		if r.Listener != 1 {
			t.Fatalf("listener %d handled %+v, want every connection on listener 1", r.Listener, r)
		}
	}
	if got := p.Accepted(); got != conns+8 {
		t.Fatalf("proxy accepted %d connections, want %d", got, conns+8)
	}
}

// greetAndEcho reads the test server's greeting through the proxy and
// echoes msg.
func greetAndEcho(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		return fmt.Errorf("reading the server's greeting: %w", err)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}
