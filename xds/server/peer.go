package server

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Streams per client. The stream bound is shared by every client of the
// server; so that one client cannot take all of it, each client is also
// held to maxPeerStreams. A client is the connecting process on the Unix
// socket (its pid as the kernel recorded it at connect, SO_PEERCRED) and
// the remote IP address over TCP.

// processAddr is the remote address of a connection accepted on a Unix
// listener: the process that connected.
type processAddr struct{ pid, uid int }

func (a processAddr) Network() string { return "unix" }
func (a processAddr) String() string  { return fmt.Sprintf("pid %d (uid %d)", a.pid, a.uid) }

// processConn is a Unix connection whose RemoteAddr names its process.
type processConn struct {
	*net.UnixConn
	addr processAddr
}

func (c processConn) RemoteAddr() net.Addr { return c.addr }

// processListener wraps a Unix listener so that every connection it
// accepts carries its process's credentials; a connection whose
// credentials cannot be read is closed (never served unaccounted).
type processListener struct{ *net.UnixListener }

func (l processListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		addr, err := peerCredentials(c)
		if err != nil {
			c.Close()
			continue
		}
		return processConn{c, addr}, nil
	}
}

func peerCredentials(c *net.UnixConn) (processAddr, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return processAddr{}, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return processAddr{}, err
	}
	if credErr != nil {
		return processAddr{}, credErr
	}
	return processAddr{pid: int(cred.Pid), uid: int(cred.Uid)}, nil
}

// serveListener is what Serve hands to gRPC: Unix listeners identify
// their clients' processes.
func serveListener(l net.Listener) net.Listener {
	if ul, ok := l.(*net.UnixListener); ok {
		return processListener{ul}
	}
	return l
}

// clientOf names the client a stream comes from (see above); every
// stream whose client cannot be told apart shares one name.
func clientOf(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	switch a := p.Addr.(type) {
	case processAddr:
		return a.String()
	case *net.TCPAddr:
		return a.IP.String()
	}
	return p.Addr.Network() + ":" + p.Addr.String()
}

// admitClient counts a stream against its client's bound; release undoes
// it. The map holds only clients with an open stream, so it is bounded
// by the stream bound.
func (s *Server) admitClient(client string) error {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if s.clientStreams[client] >= s.maxPeerStreams {
		return status.Errorf(codes.ResourceExhausted, "xDS server: %s has %d streams open, the most one client may", client, s.maxPeerStreams)
	}
	s.clientStreams[client]++
	return nil
}

func (s *Server) releaseClient(client string) {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if s.clientStreams[client]--; s.clientStreams[client] <= 0 {
		delete(s.clientStreams, client)
	}
}
