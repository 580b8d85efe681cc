package transparent

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// MarkMagic is the FromProxy magic of the mark layout, in bits 8-11: the
// upstream connection of a policy listener, which applied the
// destination's L7 ingress rules.
const MarkMagic = 0x0A00

// RouteMarkMagic is the FromProxyRoute magic: the upstream connection of a
// listener that applied no L7 ingress policy (Gateway, GAMMA, ...), which
// the datapath still hands to the destination's policy listener.
const RouteMarkMagic = 0x0B00

// MaxMarkIdentity is the largest identity a mark can carry (24 bits).
const MaxMarkIdentity = 0xFFFFFF

// UpstreamMark returns the SO_MARK for an upstream connection made on
// behalf of the given source identity (0: let the datapath use the source
// address).
func UpstreamMark(identity uint32) (uint32, error) {
	return mark(MarkMagic, identity)
}

// RouteUpstreamMark is UpstreamMark for a listener that applied no L7
// ingress policy.
func RouteUpstreamMark(identity uint32) (uint32, error) {
	return mark(RouteMarkMagic, identity)
}

func mark(magic, identity uint32) (uint32, error) {
	if identity > MaxMarkIdentity {
		return 0, fmt.Errorf("identity %d does not fit in a socket mark (max %d)", identity, MaxMarkIdentity)
	}
	return magic | (identity&0xFFFF)<<16 | identity>>16, nil
}

// DialOptions configure an upstream dialer.
type DialOptions struct {
	// Mark is set with SO_MARK; use UpstreamMark. Zero sets no mark.
	Mark uint32
	// Source, when valid, binds the socket to this (typically non-local)
	// address with IP_TRANSPARENT, so the upstream sees the original
	// client's address. The port is left to the kernel, chosen at connect
	// time (IP_BIND_ADDRESS_NO_PORT).
	Source netip.Addr
}

// Dialer returns a net.Dialer applying o to every socket it opens.
func Dialer(o DialOptions) *net.Dialer {
	d := &net.Dialer{}
	if o.Source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: o.Source.Unmap().AsSlice()}
	}
	d.Control = func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if o.Mark != 0 {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(o.Mark)); err != nil {
					serr = fmt.Errorf("setting SO_MARK: %w", err)
					return
				}
			}
			if o.Source.IsValid() {
				if err := setTransparent(fd, network); err != nil {
					serr = err
					return
				}
				if err := unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
					serr = fmt.Errorf("setting IP_BIND_ADDRESS_NO_PORT: %w", err)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
	return d
}
