package listener

import "errors"

// helloState is how far the bytes peeked so far go towards a ClientHello.
type helloState uint8

const (
	helloMore   helloState = iota // a prefix of a ClientHello: read on
	helloDone                     // a complete, well-formed ClientHello
	helloNotTLS                   // not (or not a well-formed) ClientHello
)

// helloInfo is what the TLS inspector learns from a ClientHello.
type helloInfo struct {
	// SNI is the server_name extension's host name, "" without one.
	SNI string
}

// TLS record and handshake constants (RFC 8446 §5.1, §4).
const (
	recordHandshake  = 0x16
	recordHeaderLen  = 5
	maxRecordPayload = 1 << 14 // plaintext records carry at most 2^14 bytes
	typeClientHello  = 1
	extServerName    = 0
	sniHostName      = 0
	maxHostName      = 255
)

var errMalformed = errors.New("malformed ClientHello")

// parseClientHello inspects the first bytes of a connection. It returns
// helloMore while b is a proper prefix of a ClientHello (possibly spread
// over several handshake records), helloDone with its server name once the
// whole message is in b, and helloNotTLS as soon as b cannot begin one. It
// never reads beyond b and allocates only the returned name.
func parseClientHello(b []byte) (helloState, helloInfo) {
	// Reassemble the handshake message from the record fragments in b
	// without copying when it fits one record (the common case).
	var msg []byte
	var scratch []byte
	fragments := 0
	for len(b) > 0 {
		if b[0] != recordHandshake {
			return helloNotTLS, helloInfo{}
		}
		if len(b) >= 2 && b[1] != 3 {
			return helloNotTLS, helloInfo{}
		}
		if len(b) < recordHeaderLen {
			return helloMore, helloInfo{}
		}
		n := int(b[3])<<8 | int(b[4])
		if n == 0 || n > maxRecordPayload {
			return helloNotTLS, helloInfo{}
		}
		payload := b[recordHeaderLen:]
		complete := len(payload) >= n
		if complete {
			payload = payload[:n]
		}
		fragments++
		switch fragments {
		case 1:
			msg = payload
		case 2:
			scratch = append(append(scratch, msg...), payload...)
			msg = scratch
		default:
			scratch = append(scratch, payload...)
			msg = scratch
		}
		if st, done := handshakeProgress(msg); done {
			if st != helloDone {
				return st, helloInfo{}
			}
			info, err := parseHelloBody(msg[4 : 4+helloLen(msg)])
			if err != nil {
				return helloNotTLS, helloInfo{}
			}
			return helloDone, info
		}
		if !complete {
			return helloMore, helloInfo{}
		}
		b = b[recordHeaderLen+n:]
	}
	return helloMore, helloInfo{}
}

func helloLen(msg []byte) int { return int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]) }

// handshakeProgress reports whether msg (handshake bytes so far) holds a
// whole message, and whether it is a ClientHello.
func handshakeProgress(msg []byte) (helloState, bool) {
	if len(msg) >= 1 && msg[0] != typeClientHello {
		return helloNotTLS, true
	}
	if len(msg) < 4 {
		return helloMore, false
	}
	n := helloLen(msg)
	if n < 38 { // version, random, session id length: the least a hello holds
		return helloNotTLS, true
	}
	if len(msg)-4 < n {
		return helloMore, false
	}
	return helloDone, true
}

// parseHelloBody reads a ClientHello body (RFC 8446 §4.1.2) down to its
// server_name extension (RFC 6066 §3).
func parseHelloBody(b []byte) (helloInfo, error) {
	r := reader(b)
	if !r.skip(2 + 32) { // legacy_version, random
		return helloInfo{}, errMalformed
	}
	sid, ok := r.vec8()
	if !ok || len(sid) > 32 {
		return helloInfo{}, errMalformed
	}
	suites, ok := r.vec16()
	if !ok || len(suites) < 2 || len(suites)%2 != 0 {
		return helloInfo{}, errMalformed
	}
	comp, ok := r.vec8()
	if !ok || len(comp) < 1 {
		return helloInfo{}, errMalformed
	}
	if len(r) == 0 {
		return helloInfo{}, nil // no extensions at all (legal before TLS 1.3)
	}
	exts, ok := r.vec16()
	if !ok || len(r) != 0 {
		return helloInfo{}, errMalformed
	}
	var info helloInfo
	seenSNI := false
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return helloInfo{}, errMalformed
		}
		if typ != extServerName {
			continue
		}
		if seenSNI {
			return helloInfo{}, errMalformed // duplicate extensions are refused (RFC 8446 §4.2)
		}
		seenSNI = true
		name, err := parseServerName(data)
		if err != nil {
			return helloInfo{}, err
		}
		info.SNI = name
	}
	return info, nil
}

// parseServerName returns the host_name of a server_name extension body.
func parseServerName(data reader) (string, error) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return "", errMalformed
	}
	name := ""
	for len(list) > 0 {
		typ, ok1 := list.u8()
		v, ok2 := list.vec16()
		if !ok1 || !ok2 {
			return "", errMalformed
		}
		if typ != sniHostName {
			continue
		}
		if name != "" || len(v) == 0 || len(v) > maxHostName {
			return "", errMalformed // one host_name of 1..255 bytes
		}
		for _, c := range v {
			// A DNS name in ASCII: no NUL, controls, spaces or bytes a
			// header or a log line could be confused by.
			if c <= ' ' || c >= 0x7f {
				return "", errMalformed
			}
		}
		name = string(v)
	}
	return name, nil
}

// reader consumes big-endian TLS vectors.
type reader []byte

func (r *reader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

func (r *reader) u8() (uint8, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *reader) u16() (uint16, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := uint16((*r)[0])<<8 | uint16((*r)[1])
	*r = (*r)[2:]
	return v, true
}

func (r *reader) vec8() (reader, bool) {
	n, ok := r.u8()
	if !ok || len(*r) < int(n) {
		return nil, false
	}
	v := (*r)[:n]
	*r = (*r)[n:]
	return v, true
}

func (r *reader) vec16() (reader, bool) {
	n, ok := r.u16()
	if !ok || len(*r) < int(n) {
		return nil, false
	}
	v := (*r)[:n]
	*r = (*r)[n:]
	return v, true
}
