package hcm

import (
	"errors"
	"io"

	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// source is a buffered byte source a body is decoded from.
type source interface {
	window() []byte
	consume(n int)
	more() bool
}

// bodyReader reads an HTTP/1.1 message body (decoded) from a source.
type bodyReader struct {
	src       source
	framing   http1.Framing
	remaining int64
	chunk     http1.ChunkedDecoder
	err       error
}

var errBodyTruncated = errors.New("message body truncated")

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for {
		switch b.framing {
		case http1.NoBody:
			b.err = io.EOF
			return 0, io.EOF
		case http1.Length:
			if b.remaining == 0 {
				b.err = io.EOF
				return 0, io.EOF
			}
			w := b.src.window()
			if len(w) == 0 {
				if !b.src.more() {
					b.err = errBodyTruncated
					return 0, b.err
				}
				continue
			}
			n := copy(p, w[:min(int64(len(w)), b.remaining)])
			b.src.consume(n)
			b.remaining -= int64(n)
			return n, nil
		case http1.Chunked:
			if b.chunk.Done() {
				b.err = io.EOF
				return 0, io.EOF
			}
			w := b.src.window()
			if len(w) == 0 {
				if !b.src.more() {
					b.err = errBodyTruncated
					return 0, b.err
				}
				continue
			}
			// Decode at most len(p) bytes of payload so nothing is lost.
			if len(w) > len(p) {
				w = w[:len(p)]
			}
			n, data, err := b.chunk.Decode(w)
			b.src.consume(n)
			if err != nil {
				b.err = err
				return 0, err
			}
			if len(data) > 0 {
				return copy(p, data), nil
			}
		default: // UntilClose
			w := b.src.window()
			if len(w) == 0 {
				if !b.src.more() {
					b.err = io.EOF
					return 0, io.EOF
				}
				continue
			}
			n := copy(p, w)
			b.src.consume(n)
			return n, nil
		}
	}
}

// ended reports whether the body's last byte has been read, so the next
// Read returns io.EOF (or, for a chunked body, reads only the last chunk
// and trailer section the decoder already consumed).
func (b *bodyReader) ended() bool {
	switch b.framing {
	case http1.NoBody:
		return true
	case http1.Length:
		return b.remaining == 0
	case http1.Chunked:
		return b.chunk.Done()
	}
	return b.err != nil
}

// complete reports whether the whole body was read.
func (b *bodyReader) complete() bool { return b.err == io.EOF }

// h1conn as a source of request bytes.
func (hc *h1conn) window() []byte { return hc.buf[hc.r:hc.w] }
func (hc *h1conn) consume(n int)  { hc.r += n }
func (hc *h1conn) more() bool     { return hc.fillBody() }

// upSource adapts an upstream connection's read buffer.
type upSource struct{ uc *upstream.Conn }

func (u upSource) window() []byte { return u.uc.Buf[u.uc.R:u.uc.W] }
func (u upSource) consume(n int)  { u.uc.R += n }
func (u upSource) more() bool {
	uc := u.uc
	if uc.R == uc.W {
		uc.R, uc.W = 0, 0
	}
	if uc.W == len(uc.Buf) {
		uc.W = copy(uc.Buf, uc.Buf[uc.R:uc.W])
		uc.R = 0
	}
	// At most the cluster's buffer limit unread (and at least one byte
	// more, so a frame split across reads still completes).
	end := min(len(uc.Buf), max(uc.W+1, uc.R+uc.ReadLimit()))
	n, err := uc.Read(uc.Buf[uc.W:end])
	uc.W += n
	return n > 0 || err == nil
}
