package accesslog

import (
	"strings"

	"github.com/nodemesh/nodemesh/mesh/flow"
)

// wireMessage receives one StreamAccessLogsMessage: gRPC's protobuf
// codec hands a message type with an Unmarshal method of its own (and no
// generated reflection) the wire bytes as they are, and Unmarshal turns
// them into flows right away, since the bytes are the codec's pooled
// buffer and gone when it returns (see doc.go).
type wireMessage struct {
	// hasID says the message carried an identifier; node and logName
	// are then its node ID and log name, cut to MaxFieldBytes, and
	// nodeBytes and logNameBytes their lengths before the cut.
	hasID                   bool
	node, logName           string
	nodeBytes, logNameBytes int
	// entries are the message's entries in order, converted.
	entries []converted
	state   entryState // scratch, reused from entry to entry
}

// converted is one entry: a flow, or ok false when it could not become
// one (no usable addresses, malformed bytes, a string that is not
// UTF-8).
type converted struct {
	f             flow.Flow
	truncated, ok bool
}

// Reset, String and ProtoMessage make wireMessage a (legacy) protobuf
// message, which gRPC's codec accepts; protobuf's runtime then calls
// Unmarshal with the bytes.
func (m *wireMessage) Reset() { m.clear() }
func (m *wireMessage) String() string {
	return "envoy.service.accesslog.v3.StreamAccessLogsMessage (wire)"
}
func (m *wireMessage) ProtoMessage() {}

func (m *wireMessage) clear() {
	m.hasID, m.node, m.logName, m.nodeBytes, m.logNameBytes = false, "", "", 0, 0
	clear(m.entries) // the flows are the sink's now; drop the references
	m.entries = m.entries[:0]
	if cap(m.entries) > keptEntries {
		m.entries = nil
	}
}

// Unmarshal decodes a StreamAccessLogsMessage from b, which it does not
// keep. Malformed framing of the message, its identifier or its entry
// lists fails the message (and gRPC the stream, as protobuf's decoding
// did); an entry that is malformed inside is dropped alone.
func (m *wireMessage) Unmarshal(b []byte) error {
	m.clear()
	var node, logName []byte
	kind := 0
	r := reader{b: b}
	var f field
	for r.next(&f) {
		switch {
		case f.bytes(fMsgIdentifier):
			m.hasID = true
			if err := identifier(f.v, &node, &logName); err != nil {
				return err
			}
		case f.bytes(fMsgHTTPLogs), f.bytes(fMsgTCPLogs):
			// The two are a oneof: a message holding both keeps the
			// last, as protobuf decodes it; repeated, they merge.
			if int(f.num) != kind {
				clear(m.entries)
				m.entries, kind = m.entries[:0], int(f.num)
			}
			if err := m.logEntries(f.v, kind == fMsgHTTPLogs); err != nil {
				return err
			}
		}
	}
	if r.err != nil {
		return r.err
	}
	if m.hasID {
		if _, err := text(node); err != nil {
			return err
		}
		if _, err := text(logName); err != nil {
			return err
		}
		m.nodeBytes, m.logNameBytes = len(node), len(logName)
		m.node, m.logName = ownField(node), ownField(logName)
	}
	return nil
}

// ownField is b as a string of its own, cut to MaxFieldBytes.
func ownField(b []byte) string {
	s, cut := capField(view(b))
	if !cut {
		s = strings.Clone(s)
	}
	return s
}

// identifier merges a StreamAccessLogsMessage.Identifier's node ID and
// log name into node and logName.
func identifier(b []byte, node, logName *[]byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		switch {
		case f.bytes(fIDNode):
			n := reader{b: f.v}
			var g field
			for n.next(&g) {
				if g.bytes(fNodeID) {
					*node = g.v
				}
			}
			if n.err != nil {
				return n.err
			}
		case f.bytes(fIDLogName):
			*logName = f.v
		}
	}
	return r.err
}

// logEntries converts the log_entry fields of HTTPAccessLogEntries
// (http) or TCPAccessLogEntries.
func (m *wireMessage) logEntries(b []byte, http bool) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		if !f.bytes(fEntriesLogEntry) {
			continue
		}
		m.entries = append(m.entries, converted{})
		c := &m.entries[len(m.entries)-1]
		if m.state.entry(f.v, http) == nil {
			if http {
				c.f, c.truncated, c.ok = m.state.httpFlow()
			} else {
				c.f, c.truncated, c.ok = m.state.tcpFlow()
			}
			if c.ok {
				m.state.mem.own(&c.f)
			}
		}
	}
	return r.err
}
