package transparent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (and IP6T_SO_ORIGINAL_DST, same value).
const soOriginalDst = 80

// ErrNoOriginalDestination is returned when a connection carries no
// recoverable original destination.
var ErrNoOriginalDestination = errors.New("no original destination")

// OriginalDestination returns the address the client connected to. For a
// connection redirected by NAT (iptables REDIRECT) that is SO_ORIGINAL_DST;
// for one delivered transparently (eBPF sk_assign, iptables TPROXY) it is
// the accepted socket's own local address, which is what this falls back to
// when the kernel has no NAT record. IPv4-mapped addresses are unmapped.
func OriginalDestination(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%w: %T is not a TCP connection", ErrNoOriginalDestination, c)
	}
	local, ok := tc.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%w: no local address", ErrNoOriginalDestination)
	}
	localAP := local.AddrPort()
	localAP = netip.AddrPortFrom(localAP.Addr().Unmap(), localAP.Port())

	raw, err := tc.SyscallConn()
	if err != nil {
		return localAP, nil
	}
	var buf [unix.SizeofSockaddrInet6]byte
	var got uint32
	var serr error
	err = raw.Control(func(fd uintptr) {
		level := unix.SOL_IP
		if localAP.Addr().Is6() {
			level = unix.SOL_IPV6
		}
		got, serr = getsockoptBytes(int(fd), level, soOriginalDst, buf[:])
	})
	if err != nil || serr != nil {
		// ENOENT: no NAT entry, the transparent case.
		return localAP, nil
	}
	ap, err := parseSockaddr(buf[:got])
	if err != nil {
		return localAP, nil
	}
	return ap, nil
}

func getsockoptBytes(fd, level, opt int, buf []byte) (uint32, error) {
	n := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// parseSockaddr decodes a kernel sockaddr_in or sockaddr_in6 (family in
// host order, port in network order).
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("sockaddr of %d bytes", len(b))
	}
	family := binary.NativeEndian.Uint16(b[:2])
	switch family {
	case unix.AF_INET:
		if len(b) < 8 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in of %d bytes", len(b))
		}
		port := binary.BigEndian.Uint16(b[2:4])
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in6 of %d bytes", len(b))
		}
		port := binary.BigEndian.Uint16(b[2:4])
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("sockaddr family %d", family)
}
