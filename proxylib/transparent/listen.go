package transparent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

type listenOptions struct {
	mark      uint32
	reusePort bool
}

// ListenOption configures Listen and ListenGroup.
type ListenOption func(*listenOptions)

// WithListenerMark sets SO_MARK on the listener; accepted sockets inherit
// it, so the proxy's replies to clients carry it too.
func WithListenerMark(mark uint32) ListenOption {
	return func(o *listenOptions) { o.mark = mark }
}

// WithoutReusePort opens the listener without SO_REUSEPORT (one accept
// queue for the port; needed on kernels before 6.5 with eBPF TPROXY).
func WithoutReusePort() ListenOption {
	return func(o *listenOptions) { o.reusePort = false }
}

// setTransparent marks a socket transparent for its family. For IPv6
// sockets both options are set: a dual-stack socket also takes IPv4.
func setTransparent(fd uintptr, network string) error {
	if err := unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1); err != nil {
		if network == "tcp4" {
			return fmt.Errorf("setting IP_TRANSPARENT: %w", err)
		}
	}
	if network != "tcp4" {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1); err != nil &&
			!errors.Is(err, unix.ENOPROTOOPT) && !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("setting IPV6_TRANSPARENT: %w", err)
		}
	}
	return nil
}

func listenConfig(o listenOptions) net.ListenConfig {
	return net.ListenConfig{
		Control: func(network, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if serr = setTransparent(fd, network); serr != nil {
					return
				}
				if o.reusePort {
					if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
						serr = fmt.Errorf("setting SO_REUSEPORT: %w", err)
						return
					}
				}
				if o.mark != 0 {
					if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(o.mark)); err != nil {
						serr = fmt.Errorf("setting SO_MARK: %w", err)
					}
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}

// Listen opens a transparent TCP listener ("tcp", "tcp4" or "tcp6") with
// SO_REUSEPORT unless WithoutReusePort is given.
func Listen(ctx context.Context, network, address string, opts ...ListenOption) (*net.TCPListener, error) {
	o := listenOptions{reusePort: true}
	for _, opt := range opts {
		opt(&o)
	}
	lc := listenConfig(o)
	l, err := lc.Listen(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("opening transparent listener on %s: %w", address, err)
	}
	return l.(*net.TCPListener), nil
}

// ListenGroup opens n transparent SO_REUSEPORT listeners on the same
// address. If address has port 0, the first listener picks the port and
// the others join it. On error every listener opened so far is closed.
func ListenGroup(ctx context.Context, network, address string, n int, opts ...ListenOption) ([]*net.TCPListener, error) {
	if n < 1 {
		return nil, fmt.Errorf("listener group of %d: need at least one", n)
	}
	opts = append(opts, func(o *listenOptions) { o.reusePort = true })
	first, err := Listen(ctx, network, address, opts...)
	if err != nil {
		return nil, err
	}
	group := []*net.TCPListener{first}
	addr := first.Addr().String()
	for len(group) < n {
		l, err := Listen(ctx, network, addr, opts...)
		if err != nil {
			for _, g := range group {
				g.Close()
			}
			return nil, err
		}
		group = append(group, l)
	}
	return group, nil
}
