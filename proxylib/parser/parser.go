package parser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Op is a parser's decision about the front of the data.
type Op uint8

// Operations, as in Cilium's proxylib.
const (
	Nop Op = iota
	More
	Pass
	Drop
	Inject
	Error
)

func (o Op) String() string {
	return [...]string{"NOP", "MORE", "PASS", "DROP", "INJECT", "ERROR"}[o]
}

// Parser parses one connection. See the package documentation.
type Parser interface {
	OnData(reply, endStream bool, data [][]byte) (Op, int)
}

// Factory creates the parser of a new connection.
type Factory func(c *Connection) Parser

// Defaults of the bounds.
const (
	DefaultMaxBuffer = 16 << 20
	DefaultMaxInject = 4 << 20
	readBufferSize   = 32 << 10
)

// Connection is a parser's view of its connection: addresses and the
// inject buffers.
type Connection struct {
	Src, Dst netip.AddrPort
	// Listener names the listener that accepted the connection.
	Listener string
	// SrcUnjudged says Src does not stand for the peer's identity (the
	// datapath took it from a routing listener's mark): policies must
	// not match the peer by address.
	SrcUnjudged bool

	maxInject int
	inject    [2][]byte // [0] original direction, [1] reply direction
}

// Inject queues b for writing in the given direction (reply: towards the
// client). It returns how many bytes were taken, fewer than len(b) when the
// inject buffer is full. Only call it from OnData.
func (c *Connection) Inject(reply bool, b []byte) int {
	i := dirIndex(reply)
	room := c.maxInject - len(c.inject[i])
	if room <= 0 {
		return 0
	}
	if len(b) > room {
		b = b[:room]
	}
	c.inject[i] = append(c.inject[i], b...)
	return len(b)
}

func dirIndex(reply bool) int {
	if reply {
		return 1
	}
	return 0
}

// ErrParser is returned by Relay when the parser returned Error or a bound
// was exceeded.
var ErrParser = errors.New("parser error")

// Options bound a relay.
type Options struct {
	MaxBuffer   int
	MaxInject   int
	IdleTimeout time.Duration // 0: none
	// ReadSize bounds one read from either side (0: 32 KiB): the
	// listener's per_connection_buffer_limit_bytes. A frame the parser
	// needs whole is still gathered up to MaxBuffer.
	ReadSize int
}

// direction is one side of the relay: bytes read from src go, after the
// parser decided, to dst.
type direction struct {
	reply    bool
	src, dst net.Conn
	buf      []byte // unconsumed bytes, seen by the parser
	passLeft int64
	dropLeft int64
	ended    bool
	wmu      sync.Mutex // serializes writes to dst
}

type relay struct {
	mu     sync.Mutex
	p      Parser
	c      *Connection
	dirs   [2]*direction
	opt    Options
	last   atomic.Int64 // unix nanoseconds of the last activity
	closed atomic.Bool
	err    error
}

// Relay runs p between down (the client) and up (the server) until both
// directions ended, either side failed, or the parser failed. It closes
// neither connection; the caller does. It returns nil after a clean end.
func Relay(ctx context.Context, down, up net.Conn, c *Connection, p Parser, opt Options) error {
	if opt.MaxBuffer <= 0 {
		opt.MaxBuffer = DefaultMaxBuffer
	}
	if opt.MaxInject <= 0 {
		opt.MaxInject = DefaultMaxInject
	}
	c.maxInject = opt.MaxInject
	r := &relay{p: p, c: c, opt: opt}
	r.dirs[0] = &direction{src: down, dst: up}
	r.dirs[1] = &direction{reply: true, src: up, dst: down}
	r.last.Store(time.Now().UnixNano())
	stop := context.AfterFunc(ctx, func() { r.fail(ctx.Err(), down, up) })
	defer stop()
	var wg sync.WaitGroup
	for _, d := range r.dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.run(d); err != nil {
				r.fail(err, down, up)
			}
		}()
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *relay) fail(err error, down, up net.Conn) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	if r.closed.CompareAndSwap(false, true) {
		down.Close()
		up.Close()
	}
}

// write is a pending output: bytes for one side.
type write struct {
	d *direction
	b []byte
}

func (r *relay) run(d *direction) error {
	size := readBufferSize
	if r.opt.ReadSize > 0 && r.opt.ReadSize < size {
		size = r.opt.ReadSize
	}
	rb := make([]byte, size)
	var outs []write
	for {
		if r.opt.IdleTimeout > 0 {
			_ = d.src.SetReadDeadline(time.Now().Add(r.opt.IdleTimeout))
		}
		n, rerr := d.src.Read(rb)
		if n > 0 {
			r.last.Store(time.Now().UnixNano())
		}
		if rerr != nil && isTimeout(rerr) && n == 0 {
			if time.Since(time.Unix(0, r.last.Load())) < r.opt.IdleTimeout {
				continue // the other direction is active
			}
			return fmt.Errorf("idle timeout: %w", rerr)
		}
		end := rerr != nil
		r.mu.Lock()
		if r.closed.Load() {
			r.mu.Unlock()
			return nil
		}
		outs = outs[:0]
		var perr error
		outs, perr = r.process(d, rb[:n], end, outs)
		// Decide the order of writes under the lock: take each target's
		// write lock before releasing the parser lock.
		locked := map[*direction]bool{}
		for _, w := range outs {
			if !locked[w.d] {
				w.d.wmu.Lock()
				locked[w.d] = true
			}
		}
		r.mu.Unlock()
		var werr error
		for _, w := range outs {
			if werr == nil && len(w.b) > 0 {
				_, werr = w.d.dst.Write(w.b)
			}
		}
		for x := range locked {
			x.wmu.Unlock()
		}
		if perr != nil {
			return perr
		}
		if werr != nil {
			return fmt.Errorf("writing: %w", werr)
		}
		if end {
			if rerr != io.EOF && !errors.Is(rerr, net.ErrClosed) {
				return fmt.Errorf("reading: %w", rerr)
			}
			d.wmu.Lock()
			if tc, ok := d.dst.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
			}
			d.wmu.Unlock()
			return nil
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// process feeds data to the parser and returns the writes it decided.
// Called with r.mu held.
func (r *relay) process(d *direction, data []byte, end bool, outs []write) ([]write, error) {
	// Bytes already decided (an unfinished Pass or Drop) skip the parser.
	if len(d.buf) == 0 {
		if d.passLeft > 0 {
			k := min(int64(len(data)), d.passLeft)
			outs = append(outs, write{d, data[:k]})
			d.passLeft -= k
			data = data[k:]
		} else if d.dropLeft > 0 {
			k := min(int64(len(data)), d.dropLeft)
			d.dropLeft -= k
			data = data[k:]
		}
	}
	if len(data) > 0 {
		if len(d.buf)+len(data) > r.opt.MaxBuffer {
			return outs, fmt.Errorf("%w: more than %d unparsed bytes", ErrParser, r.opt.MaxBuffer)
		}
		d.buf = append(d.buf, data...)
	}
	// d.buf[off:] is what the parser has not consumed.
	off := 0
	outs = r.flush(d, outs)
	for off < len(d.buf) {
		if d.passLeft > 0 || d.dropLeft > 0 {
			break
		}
		rest := d.buf[off:]
		op, n := r.p.OnData(d.reply, end, [][]byte{rest})
		switch op {
		case Pass, Drop:
			if n <= 0 {
				return outs, fmt.Errorf("%w: %s of %d bytes", ErrParser, op, n)
			}
			k := min(n, len(rest))
			if op == Pass {
				outs = append(outs, write{d, rest[:k]})
				d.passLeft = int64(n - k)
			} else {
				d.dropLeft = int64(n - k)
			}
			off += k
		case Inject:
			i := dirIndex(d.reply)
			if n <= 0 || n > len(r.c.inject[i]) {
				return outs, fmt.Errorf("%w: inject of %d bytes with %d queued", ErrParser, n, len(r.c.inject[i]))
			}
			outs = append(outs, write{d, clone(r.c.inject[i][:n])})
			r.c.inject[i] = r.c.inject[i][n:]
		case More:
			if len(rest)+n > r.opt.MaxBuffer {
				return outs, fmt.Errorf("%w: frame needs more than %d bytes", ErrParser, r.opt.MaxBuffer)
			}
			d.buf = d.buf[off:]
			return r.flushOther(d, r.flush(d, outs)), nil
		case Nop:
			d.buf = d.buf[off:]
			return r.flushOther(d, r.flush(d, outs)), nil
		case Error:
			return outs, fmt.Errorf("%w: code %d", ErrParser, n)
		default:
			return outs, fmt.Errorf("%w: unknown operation %d", ErrParser, op)
		}
		outs = r.flush(d, outs)
	}
	// Consumed bytes stay in place until the writes referring to them are
	// done: later appends only write past the live end of d.buf.
	d.buf = d.buf[off:]
	return r.flushOther(d, outs), nil
}

// flush emits d's queued injections when d is at a frame boundary.
func (r *relay) flush(d *direction, outs []write) []write {
	i := dirIndex(d.reply)
	if d.passLeft == 0 && len(r.c.inject[i]) > 0 {
		outs = append(outs, write{d, clone(r.c.inject[i])})
		r.c.inject[i] = r.c.inject[i][:0]
	}
	return outs
}

// flushOther emits the other direction's injections when it is at a frame
// boundary (its own goroutine does it otherwise when its Pass completes).
func (r *relay) flushOther(d *direction, outs []write) []write {
	return r.flush(r.dirs[1-dirIndex(d.reply)], outs)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
