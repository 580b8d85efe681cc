package hcm

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 settings the guard and the server must agree on.
const (
	// h2MaxFrameSize is the SETTINGS_MAX_FRAME_SIZE the server advertises:
	// the protocol's initial value, as Envoy uses. A larger frame is a
	// connection error (FRAME_SIZE_ERROR) even before the client saw the
	// server's SETTINGS.
	h2MaxFrameSize = 16 << 10
	// h2HeaderTableSize is the HPACK dynamic table the server's decoder
	// allows; the guard's decoder mirrors it exactly.
	h2HeaderTableSize = 4096
)

// Frame types and flags the guard reads (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// twoHosts (host: a, host: b) is what the guard appends to a malformed
// request's header block so that the server rejects it itself: two host
// fields make a request malformed after the server opened its stream, so
// the stream is reset with PROTOCOL_ERROR and DATA the client already sent
// on it is discarded with its flow-control credit returned. Both are HPACK
// literals without indexing, so neither side's dynamic table changes.
var twoHosts = []byte{0x00, 0x04, 'h', 'o', 's', 't', 0x01, 'a', 0x00, 0x04, 'h', 'o', 's', 't', 0x01, 'b'}

// killFrame is a DATA frame on stream 0, a connection error of type
// PROTOCOL_ERROR: the server answers GOAWAY and closes (RFC 9113 §6.1).
var killFrame = []byte{0, 0, 0, frameData, 0, 0, 0, 0, 0}

// h2ReadBuffer is the read buffer of a plain HTTP/2 connection.
const h2ReadBuffer = 4096

var guardBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 9+h2MaxFrameSize+9+len(twoHosts))
	return &b
}}

// h2guard sits between a downstream connection and the HTTP/2 server
// (golang.org/x/net/http2) and inspects the client's frames before the
// server reads them. The server decodes requests into net/http values and
// answers some malformed ones with a 400 of its own (golang/go#26321) or
// lets others through; the guard decodes every header block with an HPACK
// decoder that mirrors the server's (same bytes, same table size, so the
// same dynamic table) and checks it with h2Check. A malformed request never
// reaches the server as a request: with stream errors configured, one
// literal field the server must reject is appended to the block (in a
// CONTINUATION frame of its own), so the server resets the stream with
// PROTOCOL_ERROR and its decoder stays in step; otherwise, as Envoy does by
// default, the block is replaced by a frame that makes the server close the
// connection with GOAWAY PROTOCOL_ERROR.
//
// It also merges a SETTINGS frame that repeats a parameter into one
// without repeats (the server hangs up on repeats, while RFC 9113 §6.5.3
// processes values in order; the last value of each parameter wins, except
// the HPACK table size, where the smallest is kept, which is always safe
// for the server's encoder).
//
// It bounds the time of every header block and of every write to the
// client (h2deadline.go).
//
// Everything else passes through untouched. The guard holds one frame at
// a time in a pooled buffer; it allocates a decoder per connection and,
// per request, only what the decoder emits. A plain (h2c) connection is
// read through a buffer of h2ReadBuffer bytes, so the small frames a client
// sends together (a HEADERS frame per request, WINDOW_UPDATEs, PINGs) cost
// one system call instead of two each (frame header, then payload); a
// payload at least that large is still read into the server's buffer
// directly. crypto/tls buffers a whole record itself.
// Read is called by the server's single frame-reading goroutine.
type h2guard struct {
	net.Conn
	r   io.Reader   // the connection, or the sniffed prefix and then it
	src guardReader // r under the header block deadline

	to      h2Timeouts
	blockBy time.Time // when the open header block must be complete
	rdArmed time.Time // the read deadline armed on the connection
	wdl     sockio.LazyDeadline

	streamErrors bool
	dec          *hpack.Decoder
	chk          h2Check
	maxFields    int

	preface   int    // client preface bytes still to pass through
	remain    uint32 // payload bytes of a passed-through frame still to copy
	pend      []byte // bytes ready for the server
	buf       *[]byte
	maxStream uint32 // highest client stream that opened with HEADERS

	block       bool // a header block is open: CONTINUATION must follow
	blockStream uint32
	blockEnd    bool // END_STREAM of the block's HEADERS frame

	stopped bool // a connection error was handed to the server
	hdr     [9]byte
}

// h2guardTLS keeps the TLS state visible to the HTTP/2 server, which checks
// the negotiated version and cipher (RFC 9113 §9.2).
type h2guardTLS struct {
	*h2guard
	tc *tls.Conn
}

func (g h2guardTLS) ConnectionState() tls.ConnectionState { return g.tc.ConnectionState() }

// newH2Guard wraps c; r yields the connection's bytes from its start (the
// client preface included).
func newH2Guard(c net.Conn, r io.Reader, maxFields int, maxListSize uint32, streamErrors bool, to h2Timeouts) net.Conn {
	tc, isTLS := c.(*tls.Conn)
	if !isTLS {
		r = bufio.NewReaderSize(r, h2ReadBuffer)
	}
	g := &h2guard{Conn: c, r: r, to: to, streamErrors: streamErrors, maxFields: maxFields, preface: len(http2.ClientPreface)}
	g.src = guardReader{g}
	g.dec = hpack.NewDecoder(h2HeaderTableSize, func(f hpack.HeaderField) { g.chk.field(f.Name, f.Value) })
	// The server bounds strings the same way; a longer one is a
	// COMPRESSION_ERROR for both decoders.
	g.dec.SetMaxStringLength(int(maxListSize))
	if isTLS {
		return h2guardTLS{h2guard: g, tc: tc}
	}
	return g
}

func (g *h2guard) Read(p []byte) (int, error) {
	for {
		switch {
		case len(g.pend) > 0:
			n := copy(p, g.pend)
			g.pend = g.pend[n:]
			if len(g.pend) == 0 {
				g.release()
			}
			return n, nil
		case g.stopped:
			// The server is closing the connection; nothing more
			// reaches it. Wait for the close.
			var scratch [256]byte
			if _, err := g.read(scratch[:]); err != nil {
				return 0, err
			}
		case g.preface > 0 || g.remain > 0:
			want := g.remain
			if g.preface > 0 {
				want = uint32(g.preface)
			}
			if uint32(len(p)) > want {
				p = p[:want]
			}
			n, err := g.read(p)
			if g.preface > 0 {
				g.preface -= n
			} else {
				g.remain -= uint32(n)
			}
			return n, err
		default:
			if err := g.next(); err != nil {
				return 0, err
			}
		}
	}
}

// next reads one frame header and decides how the frame goes on.
func (g *h2guard) next() error {
	if _, err := io.ReadFull(g.src, g.hdr[:]); err != nil {
		return err
	}
	length := uint32(g.hdr[0])<<16 | uint32(g.hdr[1])<<8 | uint32(g.hdr[2])
	typ, flags := g.hdr[3], g.hdr[4]
	stream := binary.BigEndian.Uint32(g.hdr[5:]) & (1<<31 - 1)
	switch {
	case length > h2MaxFrameSize:
		// FRAME_SIZE_ERROR: the server reads no further.
		g.passHeader(length)
		g.stopped = true
	case g.block && (typ != frameContinuation || stream != g.blockStream),
		!g.block && typ == frameContinuation:
		// Out of order: a connection error the server detects.
		g.passHeader(length)
		g.stopped = true
	case typ == frameHeaders && stream != 0, typ == frameContinuation:
		if typ == frameHeaders {
			if stream > g.maxStream {
				g.startBlock(g.to.block)
			} else {
				g.startBlock(g.to.trailers)
			}
		}
		err := g.headerFrame(length, typ, flags, stream)
		if !g.block {
			g.endBlock()
		}
		return err
	case typ == frameSettings && stream == 0 && flags&flagAck == 0 && length%6 == 0:
		return g.settingsFrame(length)
	default:
		g.passHeader(length)
	}
	return nil
}

func (g *h2guard) passHeader(length uint32) {
	g.pend = g.hdr[:]
	g.remain = length
}

// hold reads the frame's payload into the pooled buffer, after its header.
func (g *h2guard) hold(length uint32) ([]byte, error) {
	if g.buf == nil {
		g.buf = guardBufPool.Get().(*[]byte)
	}
	b := append((*g.buf)[:0], g.hdr[:]...)
	b = b[:9+int(length)]
	if _, err := io.ReadFull(g.src, b[9:]); err != nil {
		return nil, err
	}
	return b, nil
}

func (g *h2guard) release() {
	if g.buf != nil {
		guardBufPool.Put(g.buf)
		g.buf = nil
	}
}

// headerFrame decodes a HEADERS or CONTINUATION frame and, on the block's
// last frame, delivers the verdict.
func (g *h2guard) headerFrame(length uint32, typ, flags byte, stream uint32) error {
	b, err := g.hold(length)
	if err != nil {
		return err
	}
	frag := b[9:]
	if typ == frameHeaders {
		var pad int
		if flags&flagPadded != 0 {
			if len(frag) == 0 {
				g.pend = b // the server rejects it
				return nil
			}
			pad, frag = int(frag[0]), frag[1:]
		}
		if flags&flagPriority != 0 {
			if len(frag) < 5 {
				g.pend = b
				return nil
			}
			frag = frag[5:]
		}
		if pad > len(frag) {
			// A stream error; the server decodes nothing of it.
			g.pend = b
			return nil
		}
		frag = frag[:len(frag)-pad]
		trailers := stream <= g.maxStream
		if !trailers {
			g.maxStream = stream
		}
		g.chk.reset(trailers, g.maxFields)
		g.block, g.blockStream, g.blockEnd = true, stream, flags&flagEndStream != 0
	}
	if _, err := g.dec.Write(frag); err != nil {
		// The server's decoder fails on the same bytes; make sure the
		// connection ends either way.
		g.pend = append(b, killFrame...)
		g.stopped = true
		return nil
	}
	if flags&flagEndHeaders == 0 {
		g.pend = b
		return nil
	}
	g.block = false
	if err := g.dec.Close(); err != nil {
		g.pend = append(b, killFrame...)
		g.stopped = true
		return nil
	}
	if g.chk.finish(g.blockEnd) == nil {
		// A HEADERS frame on a stream the client opened before is
		// trailers, or a frame on a closed stream: h2Check passes it, and
		// the server, which knows the stream states, checks it.
		g.pend = b
		return nil
	}
	if !g.streamErrors {
		g.pend = killFrame
		g.stopped = true
		return nil
	}
	g.pend = appendMalformed(b, typ, flags, stream, twoHosts)
	return nil
}

// appendMalformed adds field to the end of the header block whose last
// frame is b. It goes into that frame, before any padding, where the frame
// has room: the server decodes it with the block, so the request is
// malformed in its eyes too, whatever else it found. In a full frame it
// goes into a CONTINUATION frame of its own (where the server, if it had
// found the block malformed already, makes a connection error of it).
func appendMalformed(b []byte, typ, flags byte, stream uint32, field []byte) []byte {
	length := len(b) - 9
	if length+len(field) > h2MaxFrameSize {
		b[4] &^= flagEndHeaders
		var cont [9]byte
		cont[2] = byte(len(field))
		cont[3] = frameContinuation
		cont[4] = flagEndHeaders
		binary.BigEndian.PutUint32(cont[5:], stream)
		b = append(b, cont[:]...)
		return append(b, field...)
	}
	pad := 0
	if typ == frameHeaders && flags&flagPadded != 0 {
		pad = int(b[9])
	}
	at := len(b) - pad
	b = append(b, field...)
	copy(b[at+len(field):], b[at:len(b)-len(field)])
	copy(b[at:], field)
	length += len(field)
	b[0], b[1], b[2] = byte(length>>16), byte(length>>8), byte(length)
	return b
}

// settingsFrame passes a SETTINGS frame, merging repeated parameters.
func (g *h2guard) settingsFrame(length uint32) error {
	b, err := g.hold(length)
	if err != nil {
		return err
	}
	g.pend = b
	n := int(length / 6)
	if n < 2 || n > 100 { // over 100 the server hangs up, as intended
		return nil
	}
	var seen [8]bool // the parameters of RFC 9113 and RFC 8441 fit
	dup := false
	for i := 0; i < n; i++ {
		id := binary.BigEndian.Uint16(b[9+6*i:])
		if int(id) < len(seen) {
			dup = dup || seen[id]
			seen[id] = true
		} else {
			// Unknown parameters are ignored by the server; a repeat of
			// one is still a repeat it hangs up on.
			for j := 0; j < i; j++ {
				dup = dup || binary.BigEndian.Uint16(b[9+6*j:]) == id
			}
		}
	}
	if dup {
		g.pend = mergeSettings(b, n)
	}
	return nil
}

// mergeSettings rewrites frame b (header and n parameters) in place so
// that each parameter appears once, at its first position.
func mergeSettings(b []byte, n int) []byte {
	out := 0
	for i := 0; i < n; i++ {
		s := http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(b[9+6*i:])), Val: binary.BigEndian.Uint32(b[9+6*i+2:])}
		j := 0
		for ; j < out; j++ {
			if binary.BigEndian.Uint16(b[9+6*j:]) == uint16(s.ID) {
				break
			}
		}
		if j == out {
			copy(b[9+6*out:], b[9+6*i:9+6*i+6])
			out++
			continue
		}
		prev := binary.BigEndian.Uint32(b[9+6*j+2:])
		switch {
		case (http2.Setting{ID: s.ID, Val: prev}).Valid() != nil:
			// An invalid value stays, so the server reports it.
		case s.ID == http2.SettingHeaderTableSize:
			binary.BigEndian.PutUint32(b[9+6*j+2:], min(prev, s.Val))
		default:
			binary.BigEndian.PutUint32(b[9+6*j+2:], s.Val)
		}
	}
	size := 6 * out
	b[0], b[1], b[2] = byte(size>>16), byte(size>>8), byte(size)
	return b[:9+size]
}
