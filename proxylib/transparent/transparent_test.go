package transparent

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUpstreamMark(t *testing.T) {
	for _, tc := range []struct {
		id   uint32
		want uint32
	}{
		{0, 0x0A00},
		{1, 0x0001_0A00},
		{8, 0x0008_0A00},
		{0x12345, 0x2345_0A01},
		{0xFFFFFF, 0xFFFF_0AFF},
	} {
		got, err := UpstreamMark(tc.id)
		if err != nil || got != tc.want {
			t.Errorf("UpstreamMark(%#x) = %#x, %v; want %#x", tc.id, got, err, tc.want)
		}
		// The datapath decodes the identity like this (bpf/lib/common.h).
		if back := got>>16 | (got&0xFF)<<16; back != tc.id {
			t.Errorf("mark %#x decodes to identity %#x, want %#x", got, back, tc.id)
		}
	}
	if _, err := UpstreamMark(0x1000000); err == nil {
		t.Error("UpstreamMark accepted an identity wider than 24 bits")
	}
}

func sockaddr4(ip [4]byte, port uint16) []byte {
	b := make([]byte, unix.SizeofSockaddrInet4)
	binary.NativeEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[4:], ip[:])
	return b
}

func sockaddr6(ip [16]byte, port uint16) []byte {
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[8:], ip[:])
	return b
}

func TestParseSockaddr(t *testing.T) {
	v6 := netip.MustParseAddr("fd00::1")
	mapped := netip.AddrFrom16(netip.MustParseAddr("10.1.2.3").As16())
	for _, tc := range []struct {
		name string
		in   []byte
		want netip.AddrPort
		ok   bool
	}{
		{"ipv4", sockaddr4([4]byte{10, 1, 2, 3}, 8080), netip.MustParseAddrPort("10.1.2.3:8080"), true},
		{"ipv6", sockaddr6(v6.As16(), 443), netip.AddrPortFrom(v6, 443), true},
		{"ipv4-mapped is unmapped", sockaddr6(mapped.As16(), 80), netip.MustParseAddrPort("10.1.2.3:80"), true},
		{"empty", nil, netip.AddrPort{}, false},
		{"short ipv4", sockaddr4([4]byte{1, 2, 3, 4}, 1)[:6], netip.AddrPort{}, false},
		{"short ipv6", sockaddr6(v6.As16(), 1)[:20], netip.AddrPort{}, false},
		{"unknown family", []byte{0xff, 0xff, 0, 0, 0, 0, 0, 0}, netip.AddrPort{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSockaddr(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseSockaddr = %v, %v; want %v (ok=%v)", got, err, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParseSockaddr(f *testing.F) {
	f.Add(sockaddr4([4]byte{10, 1, 2, 3}, 8080))
	f.Add(sockaddr6(netip.MustParseAddr("fd00::1").As16(), 443))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, err := parseSockaddr(b)
		if err == nil && !ap.Addr().IsValid() {
			t.Fatalf("accepted %x as an invalid address", b)
		}
	})
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("transparent sockets need CAP_NET_ADMIN; run as root")
	}
}

func TestListenGroupSpreadsConnections(t *testing.T) {
	requireRoot(t)
	ls, err := ListenGroup(context.Background(), "tcp4", "127.0.0.1:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	port := ls[0].Addr().(*net.TCPAddr).Port
	var mu sync.Mutex
	accepted := map[int]int{}
	var wg sync.WaitGroup
	for i, l := range ls {
		defer l.Close()
		if p := l.Addr().(*net.TCPAddr).Port; p != port {
			t.Fatalf("listener %d on port %d, want %d", i, p, port)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				accepted[i]++
				mu.Unlock()
				c.Close()
			}
		}()
	}
	const conns = 64
	for range conns {
		c, err := net.Dial("tcp4", ls[0].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		total := 0
		for _, n := range accepted {
			total += n
		}
		used := len(accepted)
		mu.Unlock()
		if total == conns {
			if used < 2 {
				t.Fatalf("all %d connections went to one listener of the group", conns)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d of %d connections", total, conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range ls {
		l.Close()
	}
	wg.Wait()
}

func TestOriginalDestinationIsLocalAddressWithoutNAT(t *testing.T) {
	requireRoot(t)
	l, err := Listen(context.Background(), "tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			defer c.Close()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := OriginalDestination(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := l.Addr().(*net.TCPAddr).AddrPort(); got != want {
		t.Fatalf("original destination %v, want %v", got, want)
	}
	if _, err := OriginalDestination(&net.UDPConn{}); err == nil {
		t.Fatal("OriginalDestination accepted a UDP connection")
	}
}

func TestDialerSetsMark(t *testing.T) {
	requireRoot(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	mark, _ := UpstreamMark(4242)
	c, err := Dialer(DialOptions{Mark: mark}).Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, _ := c.(*net.TCPConn).SyscallConn()
	var got int
	_ = raw.Control(func(fd uintptr) { got, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
	if err != nil || uint32(got) != mark {
		t.Fatalf("socket mark %#x (%v), want %#x", got, err, mark)
	}
}
