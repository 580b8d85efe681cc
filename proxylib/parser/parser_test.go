package parser

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineParser is a toy pipelined protocol: requests are lines
// "ALLOW <id>", "DENY <id>" or "BLOB <n>" followed by n raw bytes; the
// server answers "OK <id>" per ALLOW and "GOT <n>" per BLOB. DENY is
// answered by the parser with "DENIED <id>", in request order.
type lineParser struct {
	c       *Connection
	pending []string // per forwarded request: "" or the denial to inject after its answer
	queue   []string // denials waiting behind pending answers
}

func (p *lineParser) OnData(reply, end bool, data [][]byte) (Op, int) {
	b := data[0]
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) > 64 {
			return Error, 1
		}
		return More, 1
	}
	line := string(b[:i])
	if reply {
		if len(p.pending) == 0 {
			return Error, 2 // unsolicited answer
		}
		p.pending = p.pending[1:]
		// Denials queued behind this answer follow it.
		for len(p.pending) > 0 && strings.HasPrefix(p.pending[0], "DENIED") {
			p.c.Inject(true, []byte(p.pending[0]+"\n"))
			p.pending = p.pending[1:]
		}
		return Pass, i + 1
	}
	verb, arg, _ := strings.Cut(line, " ")
	switch verb {
	case "ALLOW":
		p.pending = append(p.pending, "")
		return Pass, i + 1
	case "DENY":
		msg := "DENIED " + arg
		if len(p.pending) == 0 {
			p.c.Inject(true, []byte(msg+"\n"))
		} else {
			p.pending = append(p.pending, msg)
		}
		return Drop, i + 1
	case "BLOB":
		n, _ := strconv.Atoi(arg)
		p.pending = append(p.pending, "")
		return Pass, i + 1 + n // the body streams through without parsing
	case "STAMP":
		// Inject a marker upstream in place of the line.
		p.c.Inject(false, []byte("ALLOW stamped\n"))
		p.pending = append(p.pending, "")
		if len(b) == 0 {
			return Nop, 0
		}
		return Drop, i + 1
	}
	return Error, 3
}

// server answers the toy protocol slowly, so answers are still in flight
// when later requests are parsed.
func server(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					time.Sleep(2 * time.Millisecond)
					verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
					switch verb {
					case "ALLOW":
						fmt.Fprintf(c, "OK %s\n", arg)
					case "BLOB":
						n, _ := strconv.Atoi(arg)
						if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
							return
						}
						fmt.Fprintf(c, "GOT %d\n", n)
					default:
						fmt.Fprintf(c, "BAD %s\n", verb)
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// proxy accepts one client and relays it to addr with a fresh lineParser.
func proxy(t *testing.T, addr string, opt Options) (string, chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	errs := make(chan error, 1)
	go func() {
		down, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", addr)
		if err != nil {
			errs <- err
			return
		}
		c := &Connection{}
		errs <- Relay(context.Background(), down, up, c, &lineParser{c: c}, opt)
		down.Close()
		up.Close()
	}()
	return ln.Addr().String(), errs
}

func TestPipelinedDenialsKeepOrder(t *testing.T) {
	paddr, errs := proxy(t, server(t), Options{})
	c, err := net.Dial("tcp", paddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	blob := strings.Repeat("x", 200000) // far larger than one read
	req := "DENY 0\nALLOW 1\nDENY 2\nDENY 3\nALLOW 4\nBLOB 200000\n" + blob + "DENY 5\nALLOW 6\n"
	// Write in awkward pieces so frames split across reads.
	go func() {
		for i := 0; i < len(req); i += 7 {
			if _, err := c.Write([]byte(req[i:min(i+7, len(req))])); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := "DENIED 0\nOK 1\nDENIED 2\nDENIED 3\nOK 4\nGOT 200000\nDENIED 5\nOK 6\n"
	if string(got) != want {
		t.Fatalf("replies\n%q\nwant\n%q", got, want)
	}
	if err := <-errs; err != nil {
		t.Fatalf("relay: %v", err)
	}
}

func TestInjectUpstream(t *testing.T) {
	paddr, _ := proxy(t, server(t), Options{})
	c, err := net.Dial("tcp", paddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "STAMP\nALLOW 1\n")
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	if string(got) != "OK stamped\nOK 1\n" {
		t.Fatalf("replies %q", got)
	}
}

func TestBoundsAndErrorsClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		send string
		opt  Options
	}{
		{"parser error", "BOGUS\n", Options{}},
		{"line beyond the parser's limit", strings.Repeat("a", 100), Options{}},
		{"buffer bound", strings.Repeat("a", 50), Options{MaxBuffer: 32}},
		{"unsolicited answer", "ALLOW x\n", Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upstream := server(t)
			if tc.name == "unsolicited answer" {
				// An upstream that talks first.
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				t.Cleanup(func() { ln.Close() })
				go func() {
					c, err := ln.Accept()
					if err == nil {
						fmt.Fprint(c, "OK spontaneous\n")
						time.Sleep(time.Second)
						c.Close()
					}
				}()
				upstream = ln.Addr().String()
				tc.send = ""
			}
			paddr, errs := proxy(t, upstream, tc.opt)
			c, err := net.Dial("tcp", paddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.send != "" {
				fmt.Fprint(c, tc.send)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("connection not closed: %v", err)
			}
			if err := <-errs; !errors.Is(err, ErrParser) {
				t.Fatalf("relay error %v, want ErrParser", err)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	paddr, errs := proxy(t, server(t), Options{IdleTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", paddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "ALLOW 1\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	if string(got) != "OK 1\n" {
		t.Fatalf("got %q", got)
	}
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "idle timeout") {
		t.Fatalf("relay error %v, want idle timeout", err)
	}
}

func TestInjectBound(t *testing.T) {
	c := &Connection{maxInject: 4}
	if n := c.Inject(true, []byte("abcdef")); n != 4 {
		t.Fatalf("took %d", n)
	}
	if n := c.Inject(true, []byte("x")); n != 0 {
		t.Fatalf("took %d beyond the bound", n)
	}
}

var _ sync.Mutex
