package accesslog

import (
	"errors"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// Field numbers of the messages the decoder reads (envoy.service.
// accesslog.v3, envoy.data.accesslog.v3, envoy.config.core.v3,
// google.protobuf); TestFieldNumbers checks them against the generated
// descriptors.
const (
	// StreamAccessLogsMessage; http_logs and tcp_logs are a oneof.
	fMsgIdentifier = 1
	fMsgHTTPLogs   = 2
	fMsgTCPLogs    = 3
	// StreamAccessLogsMessage.Identifier and core.v3.Node.
	fIDNode    = 1
	fIDLogName = 2
	fNodeID    = 1
	// HTTPAccessLogEntries and TCPAccessLogEntries.
	fEntriesLogEntry = 1
	// HTTPAccessLogEntry (TCPAccessLogEntry shares common_properties).
	fEntryCommon   = 1
	fEntryVersion  = 2
	fEntryRequest  = 3
	fEntryResponse = 4
	// HTTPRequestProperties, HTTPResponseProperties, UInt32Value.
	fReqMethod    = 1
	fReqAuthority = 3
	fReqPath      = 5
	fRespCode     = 1
	fUInt32Value  = 1
	// AccessLogCommon.
	fCommonRemote   = 2
	fCommonLocal    = 3
	fCommonStart    = 5
	fCommonLastTx   = 12
	fCommonUpstream = 13
	fCommonMetadata = 17
	fCommonDuration = 23
	// Timestamp and Duration.
	fSeconds = 1
	fNanos   = 2
	// core.v3.Address (a oneof of the three) and SocketAddress
	// (port_value and named_port are a oneof).
	fAddrSocket   = 1
	fAddrPipe     = 2
	fAddrInternal = 3
	fSockAddress  = 2
	fSockPort     = 3
	fSockNamed    = 4
	// core.v3.Metadata, a map entry, Struct, ListValue.
	fMetaFilter  = 1
	fMapKey      = 1
	fMapValue    = 2
	fStructField = 1
	fListValues  = 1
	// google.protobuf.Value: every field is a member of its oneof.
	fValueNull   = 1
	fValueNumber = 2
	fValueString = 3
	fValueBool   = 4
	fValueStruct = 5
	fValueList   = 6
)

// errMalformed is what a decoder returns for wire bytes it cannot read.
var errMalformed = errors.New("access log: malformed protobuf")

// errUTF8 is a string field the decoder uses that is not UTF-8.
var errUTF8 = errors.New("access log: a string field is not valid UTF-8")

// field is one field of a message on the wire: v holds a
// length-delimited field's bytes, x a varint's or a fixed64's value.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   []byte
	x   uint64
}

func (f *field) bytes(num protowire.Number) bool { return f.num == num && f.typ == protowire.BytesType }
func (f *field) varint(num protowire.Number) bool {
	return f.num == num && f.typ == protowire.VarintType
}

// reader reads a message's fields one by one:
//
//	r := reader{b: b}
//	var f field
//	for r.next(&f) { … }
//	return r.err
type reader struct {
	b   []byte
	err error
}

// next reads the next field into f; false at the end of the message or
// on malformed wire bytes (a bad tag, a length beyond the message, an
// unterminated group), which set err. A field of another wire type than
// the decoder expects keeps typ and no value, so the decoder skips it,
// as protobuf does with a field it does not know.
func (r *reader) next(f *field) bool {
	if len(r.b) == 0 {
		return false
	}
	// Most fields of an entry have a one-byte tag (a number below 16)
	// and a one-byte length or value: read those here, the rest with
	// protowire.
	if b := r.b; len(b) >= 2 && b[0] < 0x80 && b[0] >= 1<<3 && b[1] < 0x80 {
		switch typ := protowire.Type(b[0] & 7); typ {
		case protowire.BytesType:
			if end := 2 + int(b[1]); end <= len(b) {
				f.num, f.typ, f.v, f.x = protowire.Number(b[0]>>3), typ, b[2:end:end], 0
				r.b = b[end:]
				return true
			}
		case protowire.VarintType:
			f.num, f.typ, f.v, f.x = protowire.Number(b[0]>>3), typ, nil, uint64(b[1])
			r.b = b[2:]
			return true
		}
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		return r.fail()
	}
	b := r.b[n:]
	f.num, f.typ, f.v, f.x = num, typ, nil, 0
	switch typ {
	case protowire.BytesType:
		f.v, n = protowire.ConsumeBytes(b)
	case protowire.VarintType:
		f.x, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		f.x, n = protowire.ConsumeFixed64(b)
	default:
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return r.fail()
	}
	r.b = b[n:]
	return true
}

func (r *reader) fail() bool {
	r.b, r.err = nil, errMalformed
	return false
}

// framed checks that b is a sequence of well-framed fields (a message
// whose content the decoder does not read).
func framed(b []byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
	}
	return r.err
}

// text is a string field's bytes, which must be UTF-8 (protobuf's rule
// for proto3 strings, and Hubble's).
func text(v []byte) ([]byte, error) {
	if !utf8.Valid(v) {
		return nil, errUTF8
	}
	return v, nil
}

// l7 metadata keys the conversion reads, as indexes of entryState.vals.
const (
	kProtocol = iota
	kVerdict
	kPolicy
	kReason
	kSourceIdentity
	kMissingHeaders
	kRejectedHeaders
	kGRPCService
	kGRPCMethod
	kGRPCStatus
	kKafkaAPIKey
	kKafkaAPIKeyName
	kKafkaAPIVersion
	kKafkaCorrelationID
	kKafkaClientID
	kKafkaTopics
	kKafkaErrorCode
	kKafkaErrorName
	numKeys
)

// keyIndex maps an l7 metadata key to its index; -1 for keys the
// conversion does not read.
func keyIndex(k []byte) int {
	switch string(k) { // no allocation: the compiler compares in place
	case l7meta.Protocol:
		return kProtocol
	case l7meta.Verdict:
		return kVerdict
	case l7meta.Policy:
		return kPolicy
	case l7meta.Reason:
		return kReason
	case l7meta.SourceIdentity:
		return kSourceIdentity
	case l7meta.MissingHeaders:
		return kMissingHeaders
	case l7meta.RejectedHeaders:
		return kRejectedHeaders
	case l7meta.GRPCService:
		return kGRPCService
	case l7meta.GRPCMethod:
		return kGRPCMethod
	case l7meta.GRPCStatus:
		return kGRPCStatus
	case l7meta.KafkaAPIKey:
		return kKafkaAPIKey
	case l7meta.KafkaAPIKeyName:
		return kKafkaAPIKeyName
	case l7meta.KafkaAPIVersion:
		return kKafkaAPIVersion
	case l7meta.KafkaCorrelationID:
		return kKafkaCorrelationID
	case l7meta.KafkaClientID:
		return kKafkaClientID
	case l7meta.KafkaTopics:
		return kKafkaTopics
	case l7meta.KafkaErrorCode:
		return kKafkaErrorCode
	case l7meta.KafkaErrorName:
		return kKafkaErrorName
	}
	return -1
}

// Kinds of a google.protobuf.Value, as far as the conversion tells them
// apart.
const (
	kindNone = iota
	kindNumber
	kindString
	kindList
	kindOther // null, bool, struct
)

// value is one l7 metadata value. A list's items are in its entry's
// items, at most MaxListItems+1 (so that budget.list sees a longer list
// was cut); a non-string item reads as "".
type value struct {
	set  bool // the key is in the Struct
	kind int
	num  float64
	str  []byte
	n    int // list items held
}

// listSlot is where a list key keeps its items in entryState.items; -1
// for keys that are no lists.
func listSlot(k int) int {
	switch k {
	case kMissingHeaders:
		return 0
	case kRejectedHeaders:
		return 1
	case kKafkaTopics:
		return 2
	}
	return -1
}

// address is a core.v3.Address as the conversion reads it.
type address struct {
	socket bool // socket_address is the oneof's member
	ip     []byte
	port   uint32 // 0 unless port_value is the port's member
}

type stamp struct {
	set   bool
	secs  int64
	nanos int32
}

// entryState is one entry's fields, as views of the message's bytes.
// Fields that repeat merge as protobuf merges them (the last scalar
// wins, messages merge, a oneof's other member starts afresh, a map
// entry replaces the one of the same key), so the decoder reads what
// proto.Unmarshal would.
type entryState struct {
	fields
	// items are the lists' items (listSlot); only the first value.n of
	// a list are meaningful, so reset leaves them.
	items [3][MaxListItems + 1][]byte
	// mem is where converted flows' HTTP parts and strings come from;
	// it outlives entries (reset leaves it).
	mem arena
}

// fields are the entry's fields but the lists' items.
type fields struct {
	remote, local      address
	upstream           bool
	start, lastTx, dur stamp
	md                 bool // the l7 namespace is in filter_metadata
	vals               [numKeys]value
	method, version    int32
	authority, path    []byte
	status             uint32
}

func (e *entryState) reset() { e.fields = fields{} }

// entry decodes an HTTPAccessLogEntry (http) or a TCPAccessLogEntry.
func (e *entryState) entry(b []byte, http bool) error {
	e.reset()
	r := reader{b: b}
	var f field
	for r.next(&f) {
		var err error
		switch {
		case f.bytes(fEntryCommon):
			err = e.decodeCommon(f.v)
		case !http:
		case f.varint(fEntryVersion):
			e.version = int32(f.x)
		case f.bytes(fEntryRequest):
			err = e.request(f.v)
		case f.bytes(fEntryResponse):
			err = e.response(f.v)
		}
		if err != nil {
			return err
		}
	}
	return r.err
}

func (e *entryState) request(b []byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		var err error
		switch {
		case f.varint(fReqMethod):
			e.method = int32(f.x)
		case f.bytes(fReqAuthority):
			e.authority, err = text(f.v)
		case f.bytes(fReqPath):
			e.path, err = text(f.v)
		}
		if err != nil {
			return err
		}
	}
	return r.err
}

func (e *entryState) response(b []byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		if !f.bytes(fRespCode) {
			continue
		}
		// A google.protobuf.UInt32Value.
		c := reader{b: f.v}
		var g field
		for c.next(&g) {
			if g.varint(fUInt32Value) {
				e.status = uint32(g.x)
			}
		}
		if c.err != nil {
			return c.err
		}
	}
	return r.err
}

func (e *entryState) decodeCommon(b []byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		var err error
		switch {
		case f.bytes(fCommonRemote):
			err = e.remote.decode(f.v)
		case f.bytes(fCommonLocal):
			err = e.local.decode(f.v)
		case f.bytes(fCommonStart):
			err = e.start.decode(f.v)
		case f.bytes(fCommonLastTx):
			err = e.lastTx.decode(f.v)
		case f.bytes(fCommonDuration):
			err = e.dur.decode(f.v)
		case f.bytes(fCommonUpstream):
			// Only its presence is read; its bytes must still be a
			// message.
			e.upstream = true
			err = framed(f.v)
		case f.bytes(fCommonMetadata):
			err = e.metadata(f.v)
		}
		if err != nil {
			return err
		}
	}
	return r.err
}

// decode merges a Timestamp or a Duration into s.
func (s *stamp) decode(b []byte) error {
	s.set = true
	r := reader{b: b}
	var f field
	for r.next(&f) {
		switch {
		case f.varint(fSeconds):
			s.secs = int64(f.x)
		case f.varint(fNanos):
			s.nanos = int32(f.x)
		}
	}
	return r.err
}

// decode merges a core.v3.Address into a.
func (a *address) decode(b []byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		switch {
		case f.bytes(fAddrSocket):
			if !a.socket {
				*a = address{socket: true}
			}
			if err := a.socketAddress(f.v); err != nil {
				return err
			}
		case f.bytes(fAddrPipe), f.bytes(fAddrInternal):
			*a = address{}
		}
	}
	return r.err
}

func (a *address) socketAddress(b []byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		var err error
		switch {
		case f.bytes(fSockAddress):
			a.ip, err = text(f.v)
		case f.varint(fSockPort):
			a.port = uint32(f.x)
		case f.bytes(fSockNamed):
			a.port = 0
		}
		if err != nil {
			return err
		}
	}
	return r.err
}

// metadata reads the l7 namespace's Struct from filter_metadata; a later
// map entry of the namespace replaces an earlier one.
func (e *entryState) metadata(b []byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		if !f.bytes(fMetaFilter) {
			continue
		}
		key, val, n, err := mapEntry(f.v)
		if err != nil {
			return err
		}
		if string(key) != l7meta.Namespace {
			continue
		}
		e.md = true
		e.vals = [numKeys]value{}
		if err := eachValue(f.v, val, n, e.structFields); err != nil {
			return err
		}
	}
	return r.err
}

// mapEntry reads a map entry with a string key: its key (the last one,
// as protobuf reads it), its value field's bytes and how many value
// fields it has (more than one merge; see eachValue).
func mapEntry(b []byte) (key, val []byte, n int, err error) {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		switch {
		case f.bytes(fMapKey):
			key = f.v
		case f.bytes(fMapValue):
			val = f.v
			n++
		}
	}
	return key, val, n, r.err
}

// eachValue calls fn with the value fields of the map entry b in order:
// val when it is the only one (as mapEntry found), else each of them.
func eachValue(b, val []byte, n int, fn func([]byte) error) error {
	if n <= 1 {
		if n == 0 {
			return nil
		}
		return fn(val)
	}
	r := reader{b: b}
	var f field
	for r.next(&f) {
		if f.bytes(fMapValue) {
			if err := fn(f.v); err != nil {
				return err
			}
		}
	}
	return r.err
}

// structFields reads the fields of the l7 Struct the conversion uses.
func (e *entryState) structFields(b []byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		if !f.bytes(fStructField) {
			continue
		}
		key, val, n, err := mapEntry(f.v)
		if err != nil {
			return err
		}
		k := keyIndex(key)
		if k < 0 {
			continue
		}
		v := &e.vals[k]
		*v = value{set: true}
		var items *[MaxListItems + 1][]byte
		if slot := listSlot(k); slot >= 0 {
			items = &e.items[slot]
		}
		if n == 1 {
			err = v.decode(val, items)
		} else {
			err = eachValue(f.v, val, n, func(b []byte) error { return v.decode(b, items) })
		}
		if err != nil {
			return err
		}
	}
	return r.err
}

// valueKind is the kind a field of a google.protobuf.Value sets
// (kindNone: not a member of its oneof, or the wrong wire type).
func valueKind(f *field) int {
	switch {
	case f.num == fValueNumber && f.typ == protowire.Fixed64Type:
		return kindNumber
	case f.bytes(fValueString):
		return kindString
	case f.bytes(fValueList):
		return kindList
	case f.varint(fValueNull), f.varint(fValueBool), f.bytes(fValueStruct):
		return kindOther
	}
	return kindNone
}

// decode merges a google.protobuf.Value into v; a list's items go to
// items (nil: the key is no list, its items are not kept). Nested
// structs and lists are checked for framing one level down, not read:
// the decoder never recurses deeper than a list's items.
func (v *value) decode(b []byte, items *[MaxListItems + 1][]byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		kind := valueKind(&f)
		if kind == kindNone {
			continue
		}
		if kind != v.kind {
			*v = value{set: v.set, kind: kind}
		}
		var err error
		switch kind {
		case kindNumber:
			v.num = math.Float64frombits(f.x)
		case kindString:
			v.str, err = text(f.v)
		case kindList:
			err = v.list(f.v, items)
		case kindOther:
			if f.typ == protowire.BytesType {
				err = framed(f.v)
			}
		}
		if err != nil {
			return err
		}
	}
	return r.err
}

// list appends a ListValue's items, up to MaxListItems+1.
func (v *value) list(b []byte, items *[MaxListItems + 1][]byte) error {
	r := reader{b: b}
	var f field
	for r.next(&f) {
		if !f.bytes(fListValues) {
			continue
		}
		if items == nil || v.n > MaxListItems {
			// Not read: the key is no list, or the list is cut before.
			if err := framed(f.v); err != nil {
				return err
			}
			continue
		}
		s, err := listItem(f.v)
		if err != nil {
			return err
		}
		items[v.n] = s
		v.n++
	}
	return r.err
}

// listItem is a list item's string, nil when the item is no string.
func listItem(b []byte) ([]byte, error) {
	var s []byte
	kind := kindNone
	r := reader{b: b}
	var f field
	for r.next(&f) {
		k := valueKind(&f)
		if k == kindNone {
			continue
		}
		kind, s = k, f.v
		if k != kindString && f.typ == protowire.BytesType {
			if err := framed(f.v); err != nil {
				return nil, err
			}
		}
	}
	if r.err != nil || kind != kindString {
		return nil, r.err
	}
	return text(s)
}
