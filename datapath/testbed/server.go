package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a dual-stack TCP server inside a namespace. For each
// connection it first writes the peer address it sees and a newline, then
// echoes everything it reads.
type Server struct {
	l        net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// StartServer listens on port (all addresses, both families).
func (n *Namespace) StartServer(port int) (*Server, error) {
	l, err := n.Listen("tcp", fmt.Sprintf("[::]:%d", port))
	if err != nil {
		return nil, err
	}
	s := &Server{l: l, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				peer := c.RemoteAddr().(*net.TCPAddr).AddrPort()
				peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
				if _, err := io.WriteString(c, peer.String()+"\n"); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return s, nil
}

// Accepted is the number of connections accepted so far.
func (s *Server) Accepted() int64 { return s.accepted.Load() }

// Close stops the server and closes its connections.
func (s *Server) Close() error {
	err := s.l.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Conn is a client connection to a Server.
type Conn struct {
	net.Conn
	r *bufio.Reader
	// Peer is the client address the server saw.
	Peer netip.AddrPort
}

// Connect dials a Server from inside ns and reads the greeting.
func Connect(ctx context.Context, ns *Namespace, to netip.AddrPort) (*Conn, error) {
	c, err := ns.Dial(ctx, "tcp", to.String())
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading greeting from %s: %w", to, err)
	}
	peer, err := netip.ParseAddrPort(strings.TrimSpace(line))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("parsing greeting %q: %w", line, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return &Conn{Conn: c, r: r, Peer: peer}, nil
}

// Echo sends msg and waits for it to come back.
func (c *Conn) Echo(msg []byte, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c.r, got); err != nil {
		return fmt.Errorf("reading echo: %w", err)
	}
	if string(got) != string(msg) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}
