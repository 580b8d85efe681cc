package http1

import "errors"

// Chunked decoding errors.
var (
	ErrBadChunk       = errors.New("malformed chunked encoding")
	ErrChunkTooLarge  = errors.New("chunk size out of range")
	ErrTrailerTooLong = errors.New("chunked trailer section too large")
)

// maxChunkLine bounds a chunk-size line including extensions.
const maxChunkLine = 4096

type chunkState uint8

const (
	csSize      chunkState = iota // reading hex digits
	csExt                         // skipping a chunk extension
	csSizeLF                      // after CR of the size line
	csData                        // inside chunk data
	csDataCR                      // expecting CR after data
	csDataLF                      // expecting LF after data
	csTrailer                     // at the start of a trailer line (or the final CRLF)
	csTrailerLn                   // inside a trailer line
	csTrailerLF                   // after CR of a trailer line
	csEndLF                       // after the CR of the final empty line
	csDone
)

// ChunkedDecoder decodes a chunked body incrementally without allocating.
// Trailers are validated for framing and discarded: like Envoy's HTTP/1
// codec without enable_trailers, the proxy does not forward HTTP/1 trailers.
type ChunkedDecoder struct {
	state     chunkState
	size      uint64
	digits    int
	lineLen   int
	trailerSz int
	lineStart bool
}

// Reset prepares the decoder for a new body.
func (d *ChunkedDecoder) Reset() { *d = ChunkedDecoder{} }

// Done reports whether the terminating chunk and trailers were consumed.
func (d *ChunkedDecoder) Done() bool { return d.state == csDone }

// Decode consumes framing from p. It returns the number of bytes consumed and
// the payload bytes found (a sub-slice of p). It stops after one payload
// span, so callers loop until n == len(p) or Done. A framing error is final.
func (d *ChunkedDecoder) Decode(p []byte) (n int, data []byte, err error) {
	for n < len(p) {
		c := p[n]
		switch d.state {
		case csSize:
			v, ok := unhex(c)
			if ok {
				d.digits++
				if d.digits > 15 {
					return n, nil, ErrChunkTooLarge
				}
				d.size = d.size<<4 | uint64(v)
				d.lineLen++
				n++
				continue
			}
			if d.digits == 0 {
				return n, nil, ErrBadChunk
			}
			switch c {
			case '\r':
				d.state = csSizeLF
			case ';', ' ', '\t':
				d.state = csExt
			default:
				return n, nil, ErrBadChunk
			}
			d.lineLen++
			n++
		case csExt:
			d.lineLen++
			if d.lineLen > maxChunkLine {
				return n, nil, ErrBadChunk
			}
			switch {
			case c == '\r':
				d.state = csSizeLF
			case c == '\n' || (c < ' ' && c != '\t') || c == 0x7f:
				return n, nil, ErrBadChunk
			}
			n++
		case csSizeLF:
			if c != '\n' {
				return n, nil, ErrBadChunk
			}
			n++
			if d.size == 0 {
				d.state = csTrailer
			} else {
				d.state = csData
			}
		case csData:
			avail := uint64(len(p) - n)
			take := d.size
			if take > avail {
				take = avail
			}
			data = p[n : n+int(take)]
			n += int(take)
			d.size -= take
			if d.size == 0 {
				d.state = csDataCR
			}
			return n, data, nil
		case csDataCR:
			if c != '\r' {
				return n, nil, ErrBadChunk
			}
			d.state = csDataLF
			n++
		case csDataLF:
			if c != '\n' {
				return n, nil, ErrBadChunk
			}
			n++
			d.state = csSize
			d.size, d.digits, d.lineLen = 0, 0, 0
		case csTrailer:
			n++
			d.trailerSz++
			if c == '\r' {
				d.state = csEndLF
				continue
			}
			if !tokenTable[c] {
				return n - 1, nil, ErrBadChunk
			}
			d.state = csTrailerLn
		case csTrailerLn:
			n++
			d.trailerSz++
			if d.trailerSz > MaxHeadBytes {
				return n, nil, ErrTrailerTooLong
			}
			switch {
			case c == '\r':
				d.state = csTrailerLF
			case c == '\n' || (c < ' ' && c != '\t') || c == 0x7f:
				return n - 1, nil, ErrBadChunk
			}
		case csTrailerLF:
			if c != '\n' {
				return n, nil, ErrBadChunk
			}
			n++
			d.state = csTrailer
		case csEndLF:
			if c != '\n' {
				return n, nil, ErrBadChunk
			}
			n++
			d.state = csDone
			return n, nil, nil
		case csDone:
			return n, nil, nil
		}
	}
	return n, nil, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// AppendChunk appends one chunk (size line, data, CRLF) to dst.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = AppendHex(dst, uint64(len(data)))
	dst = append(dst, '\r', '\n')
	dst = append(dst, data...)
	return append(dst, '\r', '\n')
}

// AppendChunkHeader appends only the size line of a chunk of n bytes.
func AppendChunkHeader(dst []byte, n int) []byte {
	dst = AppendHex(dst, uint64(n))
	return append(dst, '\r', '\n')
}

// LastChunk is the terminating chunk with an empty trailer section.
const LastChunk = "0\r\n\r\n"

// AppendHex appends v in lower-case hexadecimal.
func AppendHex(dst []byte, v uint64) []byte {
	if v == 0 {
		return append(dst, '0')
	}
	var b [16]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = "0123456789abcdef"[v&15]
		v >>= 4
	}
	return append(dst, b[i:]...)
}
