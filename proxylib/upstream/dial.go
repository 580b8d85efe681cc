package upstream

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/transparent"
)

// dialOptions say how a pool opens upstream sockets.
type dialOptions struct {
	mark func(fd uintptr) error // proxy-wide hook (tests, legacy)
	bind *resource.Bind         // the cluster's upstream_bind_config
	// source, when valid, binds to the client's address with
	// IP_TRANSPARENT (original_src); srcMark then overrides the mark.
	source  netip.Addr
	srcMark uint32
	tls     *clientTLS // nil: plain TCP
}

// bindKey fingerprints bind options so pools with different socket
// options are never shared.
func bindKey(b *resource.Bind) string {
	if b == nil {
		return ""
	}
	var sb strings.Builder
	sb.WriteString(b.Source.String())
	for _, o := range b.Options {
		fmt.Fprintf(&sb, "|%d/%d/%d/%x/%v", o.Level, o.Name, o.Int, o.Buf, o.IsBuf)
	}
	return sb.String()
}

// dial connects to addr ("ip:port" or "unix:<path>") within timeout, which
// covers the TLS handshake when the cluster originates TLS: the connection
// is then a *tls.Conn.
func (o dialOptions) dial(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	if o.tls == nil {
		return o.dialRaw(ctx, addr, timeout)
	}
	deadline := time.Now().Add(timeout)
	nc, err := o.dialRaw(ctx, addr, timeout)
	if err != nil {
		return nil, err
	}
	tc, err := o.tls.handshake(ctx, nc, deadline)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

func (o dialOptions) dialRaw(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		d := net.Dialer{Timeout: timeout}
		return d.DialContext(ctx, "unix", path)
	}
	var d *net.Dialer
	if o.source.IsValid() {
		mark := o.srcMark
		if mark == 0 {
			mark = o.bind.Mark()
		}
		d = transparent.Dialer(transparent.DialOptions{Mark: mark, Source: o.source})
		if o.bind != nil {
			inner := d.Control
			d.Control = func(network, address string, c syscall.RawConn) error {
				if err := inner(network, address, c); err != nil {
					return err
				}
				return o.apply(c, true)
			}
		}
	} else {
		d = &net.Dialer{}
		if o.bind != nil && o.bind.Source.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: o.bind.Source.Addr().AsSlice(), Port: int(o.bind.Source.Port())}
		}
		if o.bind != nil || o.mark != nil {
			d.Control = func(network, address string, c syscall.RawConn) error { return o.apply(c, false) }
		}
	}
	d.Timeout = timeout
	return d.DialContext(ctx, "tcp", addr)
}

// apply sets the cluster's socket options (all before connect:
// STATE_PREBIND) and the proxy-wide mark hook. skipMark leaves SO_MARK to
// the original-source dialer.
func (o dialOptions) apply(c syscall.RawConn, skipMark bool) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if o.mark != nil {
			if serr = o.mark(fd); serr != nil {
				return
			}
		}
		if o.bind == nil {
			return
		}
		for _, opt := range o.bind.Options {
			if skipMark && opt.Level == unix.SOL_SOCKET && opt.Name == unix.SO_MARK {
				continue
			}
			var e error
			if opt.IsBuf {
				e = unix.SetsockoptString(int(fd), int(opt.Level), int(opt.Name), string(opt.Buf))
			} else {
				e = unix.SetsockoptInt(int(fd), int(opt.Level), int(opt.Name), int(opt.Int))
			}
			if e != nil {
				serr = fmt.Errorf("setting socket option %d/%d: %w", opt.Level, opt.Name, e)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Dial opens an unpooled upstream connection to host with the cluster's
// socket options (tcp_proxy). source, when valid, is the client address to
// bind for original_src, with srcMark (not bound where BindSource would not
// bind it). The connection counts against the
// cluster's max_connections until closed; beyond it Dial fails with
// ErrOverflow, as Envoy's tcp_proxy does.
func (c *Cluster) Dial(ctx context.Context, h *Host, source netip.Addr, srcMark uint32) (net.Conn, error) {
	p := h.Pool
	if !p.b.reserve(p) {
		return nil, ErrOverflow
	}
	o := p.opts
	if bindable(h.Addr, source) {
		o.source, o.srcMark = source, srcMark
	}
	nc, err := o.dial(ctx, h.Addr, c.Config.ConnectTimeout)
	if err != nil {
		p.b.release(p)
		return nil, err
	}
	return &slotConn{Conn: nc, b: p.b, p: p}, nil
}

// addrString renders an original destination as a pool address.
func addrString(ap netip.AddrPort) string {
	return net.JoinHostPort(ap.Addr().Unmap().String(), strconv.Itoa(int(ap.Port())))
}
