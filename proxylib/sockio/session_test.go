package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestReadNowOutsideSession(t *testing.T) {
	c, _ := tcpPair(t)
	if _, _, err := c.ReadNow(make([]byte, 8)); !errors.Is(err, errNoSession) {
		t.Fatalf("ReadNow outside a session = %v", err)
	}
}

// TestSessionInq checks what ReadNow reports about pending input on TCP:
// nothing pending after a drained read, something pending when the read
// left bytes or a FIN behind.
func TestSessionInq(t *testing.T) {
	c, s := tcpPair(t)
	if !c.TrackPending() {
		t.Fatal("TrackPending unavailable on TCP")
	}
	buf := make([]byte, 4)
	type read struct {
		data string
		more bool
		err  error
	}
	var got []read
	step := 0
	err := c.Session(func() bool {
		for {
			n, more, err := c.ReadNow(buf)
			if err == ErrWouldBlock {
				step++
				switch step {
				case 1:
					_, _ = s.Write([]byte("abcdef")) // more than buf holds
				case 2:
					// The rest and the FIN, in one segment.
					rc, _ := s.(*net.TCPConn).SyscallConn()
					_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 1) })
					_, _ = s.Write([]byte("gh"))
					_ = s.(*net.TCPConn).CloseWrite()
				}
				return false
			}
			got = append(got, read{string(buf[:n]), more, err})
			if err != nil {
				return true
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []read{{"abcd", true, nil}, {"ef", false, nil}, {"gh", true, nil}, {"", true, io.EOF}}
	if len(got) != len(want) {
		t.Fatalf("reads %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("read %d = %+v, want %+v (all: %+v)", i, got[i], want[i], got)
		}
	}
}

// A session whose callback returns false without reading still wakes for
// bytes that arrived after its last read.
func TestSessionWakesAfterSkippedRead(t *testing.T) {
	c, s := tcpPair(t)
	buf := make([]byte, 16)
	calls := 0
	var data string
	err := c.Session(func() bool {
		calls++
		switch calls {
		case 1:
			if _, _, err := c.ReadNow(buf); err != ErrWouldBlock {
				t.Errorf("first ReadNow = %v", err)
				return true
			}
			_, _ = s.Write([]byte("late")) // arrives before the session waits
			return false
		default:
			n, _, err := c.ReadNow(buf)
			if err == ErrWouldBlock {
				return false
			}
			data = string(buf[:n])
			return true
		}
	})
	if err != nil || data != "late" {
		t.Fatalf("session = %v, read %q", err, data)
	}
}

func TestSessionDeadlineAndClose(t *testing.T) {
	c, _ := tcpPair(t)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	err := c.Session(func() bool { return false })
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("session past its deadline = %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.Close()
	}()
	if err := c.Session(func() bool { return false }); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("session of a closed conn = %v", err)
	}
}

// Where the kernel cannot tell what is pending (Unix sockets), or nobody
// asked (TCP without TrackPending), ReadNow always says more may be.
func TestSessionUnixAlwaysMore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err == nil {
			_, _ = s.Write([]byte("x"))
			time.Sleep(100 * time.Millisecond)
			s.Close()
		}
	}()
	uc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := Wrap(uc).(*Conn)
	defer c.Close()
	if c.TrackPending() {
		t.Fatal("TrackPending claims to work on a Unix socket")
	}
	var more bool
	if err := c.Session(func() bool {
		_, m, err := c.ReadNow(make([]byte, 8))
		if err == ErrWouldBlock {
			return false
		}
		more = m
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !more {
		t.Fatal("ReadNow on a Unix socket claimed nothing more is pending")
	}
}

func TestSessionDoesNotAllocate(t *testing.T) {
	c, s := tcpPair(t)
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	fn := func() bool {
		_, _, err := c.ReadNow(buf)
		return err != ErrWouldBlock
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := c.Session(fn); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a session allocates %v times", allocs)
	}
}

func TestSessionUntrackedAlwaysMore(t *testing.T) {
	c, s := tcpPair(t)
	_, _ = s.Write([]byte("x"))
	var more bool
	if err := c.Session(func() bool {
		_, m, err := c.ReadNow(make([]byte, 8))
		if err == ErrWouldBlock {
			return false
		}
		more = m
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !more {
		t.Fatal("ReadNow without TrackPending claimed nothing more is pending")
	}
}
