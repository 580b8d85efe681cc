package accesslog

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// The field numbers the sender frames its messages with, read from the
// messages' descriptors.
var (
	msgFields       = (&alsv3.StreamAccessLogsMessage{}).ProtoReflect().Descriptor().Fields()
	identifierField = msgFields.ByName("identifier").Number()
	httpLogsField   = msgFields.ByName("http_logs").Number()
	tcpLogsField    = msgFields.ByName("tcp_logs").Number()
	// log_entry of HTTPAccessLogEntries and of TCPAccessLogEntries.
	httpEntryField = (&alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{}).ProtoReflect().Descriptor().Fields().ByName("log_entry").Number()
	tcpEntryField  = (&alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{}).ProtoReflect().Descriptor().Fields().ByName("log_entry").Number()
)

// batchEncoder holds the wire form of a batch's entries, each framed as
// the log_entry field of the batch's entries message, so a flush only
// prefixes them with the message's own fields.
type batchEncoder struct {
	buf  []byte // the encoded entries
	ends []int  // where each entry ends in buf
	n    int    // entries of the pending buffer handled (encoded or skipped)
	// skipped counts entries that could not be encoded (a string field
	// that is not UTF-8): they are dropped alone, not with their batch.
	skipped int
}

var sizeOnce = proto.MarshalOptions{UseCachedSize: true}

// add encodes e after the entries already held.
func (b *batchEncoder) add(kind resource.AccessLogKind, e proto.Message) {
	b.n++
	field := httpEntryField
	if kind != resource.AccessLogHTTP {
		field = tcpEntryField
	}
	mark := len(b.buf)
	size := proto.Size(e)
	b.buf = protowire.AppendTag(b.buf, field, protowire.BytesType)
	b.buf = protowire.AppendVarint(b.buf, uint64(size))
	// Size filled the entry's size caches; the marshal reuses them.
	out, err := sizeOnce.MarshalAppend(b.buf, e)
	if err != nil || len(out)-len(b.buf) != size {
		b.buf = b.buf[:mark]
		b.skipped++
		return
	}
	b.buf = out
	b.ends = append(b.ends, len(b.buf))
}

// addAll adds waiting entries: messages are marshalled, encoded ones
// (framed already, in buf) copied.
func (b *batchEncoder) addAll(kind resource.AccessLogKind, entries []queued, buf []byte) {
	for _, q := range entries {
		if q.msg != nil {
			b.add(kind, q.msg)
			continue
		}
		b.n++
		b.buf = append(b.buf, buf[q.from:q.to]...)
		b.ends = append(b.ends, len(b.buf))
	}
}

// size is the encoded entries' length.
func (b *batchEncoder) size() int { return len(b.buf) }

// take returns the encoded entries and where each ends, and empties the
// encoder; both stay valid until the next add.
func (b *batchEncoder) take() ([]byte, []int, int) {
	buf, ends, skipped := b.buf, b.ends, b.skipped
	b.buf, b.ends, b.n, b.skipped = b.buf[:0], b.ends[:0], 0, 0
	return buf, ends, skipped
}

// message frames encoded entries (whole log_entry fields) as one
// StreamAccessLogsMessage, with the identifier on a stream's first,
// appending to dst. The codec copies it into a buffer of gRPC's pool
// during the send, so the caller may reuse dst once the send returned.
func message(dst []byte, kind resource.AccessLogKind, first bool, node *corev3.Node, logName string, entries []byte) (encodedMessage, error) {
	out := dst
	if first {
		id, err := proto.Marshal(&alsv3.StreamAccessLogsMessage_Identifier{Node: node, LogName: logName})
		if err != nil {
			return nil, fmt.Errorf("encoding the stream identifier: %w", err)
		}
		out = protowire.AppendTag(out, identifierField, protowire.BytesType)
		out = protowire.AppendBytes(out, id)
	}
	field := httpLogsField
	if kind != resource.AccessLogHTTP {
		field = tcpLogsField
	}
	out = protowire.AppendTag(out, field, protowire.BytesType)
	out = protowire.AppendBytes(out, entries)
	return out, nil
}

// encodedMessage is a message already in wire form.
type encodedMessage []byte

// preEncoded is the stream's codec: messages in wire form are copied as
// they are into a buffer of gRPC's pool (which the transport returns to
// the pool once written, so a message costs no garbage), everything else
// (the server's response) is protobuf. Its name is the default codec's,
// so the server sees an ordinary protobuf stream.
type preEncoded struct{}

func (preEncoded) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case encodedMessage:
		return mem.BufferSlice{mem.Copy(m, mem.DefaultBufferPool())}, nil
	case proto.Message:
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return nil, fmt.Errorf("access log codec: cannot marshal %T", v)
}

func (preEncoded) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("access log codec: cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data.Materialize(), m)
}

func (preEncoded) Name() string { return "proto" }
