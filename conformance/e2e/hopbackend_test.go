package e2e

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"time"
)

// hopBackend is BenchmarkPolicyHop's server: HTTP/1.1 keep-alive, every
// bodiless request answered with hopBody, and no allocation per request
// once a connection is open (a fixed buffer per connection, one
// prebuilt response). Both paths of the benchmark end at it, and it
// shares its CPU with the proxy and the agent, so whatever it spends
// lands in both paths' latency, and more in the redirected one's: that
// path needs three wake-ups on the shared CPU instead of one, so a
// collection of the backend's heap holds up more of its requests. A
// net/http server allocated about 2.4 KB in 22 objects per request and
// collected every half second at 2k req/s, which showed in the hop's
// added p99 (0.5-0.8 ms with its collector off against 0.75-1.1 ms with
// it on, 10 000-request runs alternated on an idle machine). The
// server's cost is not the hop's, so the benchmark's server costs as
// little as a server can.
//
// It is a benchmark fixture, not a general server: requests with a body
// (Content-Length other than 0, or Transfer-Encoding) get a 400 and the
// connection is closed, as does a request head over the buffer.
type hopBackend struct {
	l net.Listener
}

// hopResponse is the whole answer to every request.
var hopResponse = append([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "+
	strconv.Itoa(len(hopBody))+"\r\n\r\n"), hopBody...)

var hopBadRequest = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

// hopHeadLimit bounds a request head (and so the connection's buffer).
const hopHeadLimit = 8 << 10

// serve accepts connections until the listener is closed.
func (s *hopBackend) serve() error {
	for {
		c, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.conn(c)
	}
}

func (s *hopBackend) conn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, hopHeadLimit)
	n := 0
	for {
		// A connection idle for a minute is dropped: the benchmark's
		// connections are never idle that long.
		c.SetReadDeadline(time.Now().Add(time.Minute))
		m, err := c.Read(buf[n:])
		n += m
		// Answer every complete head in the buffer (pipelined or not).
		for {
			end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if end < 0 {
				break
			}
			end += 4
			if hasBody(buf[:end]) {
				c.Write(hopBadRequest)
				return
			}
			if _, werr := c.Write(hopResponse); werr != nil {
				return
			}
			n = copy(buf, buf[end:n])
		}
		if n == len(buf) {
			c.Write(hopBadRequest)
			return
		}
		if err != nil { // io.EOF included: the client is done
			return
		}
	}
}

// hasBody reports whether a request head announces a body: a
// Transfer-Encoding, or a Content-Length other than 0.
func hasBody(head []byte) bool {
	for len(head) > 0 {
		line, rest, _ := bytes.Cut(head, []byte("\r\n"))
		head = rest
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			return true
		case bytes.EqualFold(name, []byte("content-length")):
			if string(bytes.TrimSpace(value)) != "0" {
				return true
			}
		}
	}
	return false
}
