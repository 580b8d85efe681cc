package accesslog

import (
	"errors"
	"math"
	"net/netip"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// CommonFields are the properties every entry carries, encoded as its
// common_properties (AccessLogCommon).
type CommonFields struct {
	Start    time.Time
	Duration time.Duration // also time_to_last_downstream_tx_byte
	// Remote is both the downstream remote and direct remote address.
	Remote, Local, Upstream netip.AddrPort
	UpstreamCluster         string
	RouteName               string
	Flags                   ResponseFlags
	// TerminationDetails is connection_termination_details.
	TerminationDetails string

	// L7 becomes metadata.filter_metadata[l7meta.Namespace]. Without
	// fields the metadata holds an empty struct there.
	L7 L7Fields
}

// HTTPEntry is an HTTP access-log entry in plain fields, encoded by
// AppendProto as an envoy.data.accesslog.v3.HTTPAccessLogEntry without
// building the message. A connection keeps one and refills it for every
// request (Reset), so logging allocates nothing; the byte slices may
// point into the request's buffers, as they are only read by
// AppendProto.
type HTTPEntry struct {
	CommonFields

	Protocol datav3.HTTPAccessLogEntry_HTTPVersion
	Method   corev3.RequestMethod
	// The request's fields, cut to l7meta.MaxFieldBytes (Bound) when
	// encoded.
	Scheme, Authority, Path, UserAgent, RequestID, ForwardedFor []byte

	// ResponseCode 0 leaves response_code out.
	ResponseCode        uint32
	ResponseCodeDetails string
	// Trailers are response_trailers, as name and value pairs.
	Trailers [][2]string
}

// Reset empties e and keeps its storage, holding on to none of the
// buffers its fields pointed into.
func (e *HTTPEntry) Reset() {
	clear(e.L7.f)
	clear(e.Trailers)
	fields, trailers := e.L7.f[:0], e.Trailers[:0]
	*e = HTTPEntry{}
	e.L7.f, e.Trailers = fields, trailers
}

// TCPEntry is a TCP access-log entry (a connection, or a request of an L7
// protocol parsed on it such as Kafka) in plain fields, encoded by
// AppendProto as an envoy.data.accesslog.v3.TCPAccessLogEntry.
type TCPEntry struct {
	CommonFields
}

// Reset empties e and keeps its storage, holding on to none of the
// buffers its fields pointed into.
func (e *TCPEntry) Reset() {
	clear(e.L7.f)
	fields := e.L7.f[:0]
	*e = TCPEntry{}
	e.L7.f = fields
}

// AppendProto appends e's wire form (a TCPAccessLogEntry, unframed) to
// dst, with the L7 fields cut to their bounds. On ErrNotUTF8 dst is
// returned at its original length.
func (e *TCPEntry) AppendProto(dst []byte) ([]byte, error) {
	b, ok := e.CommonFields.appendProto(dst, true)
	if !ok {
		return dst, ErrNotUTF8
	}
	return b, nil
}

// ResponseFlags is a set of Envoy's response flags, the ones the proxy
// sets.
type ResponseFlags uint32

// The response flags, each naming its envoy.data.accesslog.v3.ResponseFlags
// field.
const (
	NoRouteFound                  ResponseFlags = 1 << iota // no_route_found
	NoClusterFound                                          // no_cluster_found
	NoHealthyUpstream                                       // no_healthy_upstream
	UpstreamConnectionFailure                               // upstream_connection_failure
	UpstreamConnectionTermination                           // upstream_connection_termination
	UpstreamRequestTimeout                                  // upstream_request_timeout
	UpstreamProtocolError                                   // upstream_protocol_error
	NoFilterConfigFound                                     // no_filter_config_found
	DownstreamProtocolError                                 // downstream_protocol_error
	UpstreamOverflow                                        // upstream_overflow
	StreamIdleTimeout                                       // stream_idle_timeout
	UpstreamRemoteReset                                     // upstream_remote_reset
	UpstreamRetryLimitExceeded                              // upstream_retry_limit_exceeded
	numResponseFlags              = iota
)

// flagFields are the ResponseFlags field numbers of the flags, in bit
// order.
var flagFields = [numResponseFlags]protowire.Number{9, 25, 2, 6, 7, 3, 24, 22, 19, 8, 17, 5, 16}

// L7Fields are the l7meta fields of an entry, in the order set; a later
// field of the same key replaces an earlier one, as in a map.
type L7Fields struct {
	f []l7Field
}

type l7Kind uint8

const (
	l7String l7Kind = iota
	l7Bytes
	l7Number
	l7Bool
	l7List
)

type l7Field struct {
	key  string
	kind l7Kind
	s    string
	b    []byte
	num  float64
	list []string
}

// String sets a string field, cut to its bound when encoded.
func (l *L7Fields) String(k, v string) { l.f = append(l.f, l7Field{key: k, kind: l7String, s: v}) }

// Bytes sets a string field from bytes, cut to its bound when encoded.
func (l *L7Fields) Bytes(k string, v []byte) { l.f = append(l.f, l7Field{key: k, kind: l7Bytes, b: v}) }

// Number sets a number field.
func (l *L7Fields) Number(k string, v float64) {
	l.f = append(l.f, l7Field{key: k, kind: l7Number, num: v})
}

// Bool sets a bool field.
func (l *L7Fields) Bool(k string, v bool) {
	f := l7Field{key: k, kind: l7Bool}
	if v {
		f.num = 1
	}
	l.f = append(l.f, f)
}

// List sets a list of strings, cut to its bounds when encoded
// (BoundList). v is read when encoded, never changed.
func (l *L7Fields) List(k string, v []string) {
	l.f = append(l.f, l7Field{key: k, kind: l7List, list: v})
}

// Len is the number of fields set.
func (l *L7Fields) Len() int { return len(l.f) }

// ErrNotUTF8 is returned for an entry with a string that is not valid
// UTF-8: protobuf cannot carry it, and the service would reject the whole
// message that held it.
var ErrNotUTF8 = errors.New("access log entry: a string field is not valid UTF-8")

// Field numbers of the messages AppendProto writes (envoy.data.accesslog.v3,
// envoy.config.core.v3 and google.protobuf); the differential tests hold
// them to the generated messages.
const (
	entryCommon, entryProtocol, entryRequest, entryResponse = 1, 2, 3, 4

	commonRemote, commonLocal, commonStart     = 2, 3, 5
	commonLastDownstreamTx, commonUpstreamAddr = 12, 13
	commonCluster, commonFlags, commonMetadata = 15, 16, 17
	commonRouteName, commonDirectRemote        = 19, 20
	commonDuration, commonTermination          = 23, 25

	reqMethod, reqScheme, reqAuthority, reqPath = 1, 2, 3, 5
	reqUserAgent, reqForwardedFor, reqID        = 6, 8, 9

	respCode, respTrailers, respDetails = 1, 5, 6

	addrSocket, sockAddress, sockPort = 1, 2, 3
	filterMetadata                    = 1
	structFields                      = 1
	valueNumber, valueString          = 2, 3
	valueBool, valueList              = 4, 6
	listValues                        = 1
	mapKey, mapValue                  = 1, 2
	secondsField, nanosField          = 1, 2
	wrapperValue                      = 1
)

// AppendProto appends e's wire form (an HTTPAccessLogEntry, unframed) to
// dst. Request strings and L7 fields are cut to the schema's bounds (Bound,
// BoundList) here, so whatever the request carried, the entry is bounded.
// On ErrNotUTF8 dst is returned at its original length.
func (e *HTTPEntry) AppendProto(dst []byte) ([]byte, error) {
	mark := len(dst)
	b, ok := e.appendProto(dst)
	if !ok {
		return dst[:mark], ErrNotUTF8
	}
	return b, nil
}

// appendProto appends the common_properties field; the result is ok
// unless a string it wrote is not UTF-8. Strings that come from the
// configuration or the proxy (cluster, route name, details) are not cut,
// as before; those that come from the peer are cut in the L7 fields.
func (c *CommonFields) appendProto(b []byte, ok bool) ([]byte, bool) {
	b, common := beginMessage(b, entryCommon)
	b = appendAddress(b, commonRemote, c.Remote, &ok)
	b = appendAddress(b, commonLocal, c.Local, &ok)
	b = appendTime(b, commonStart, c.Start.Unix(), int32(c.Start.Nanosecond()))
	dur := durationParts(c.Duration)
	b = appendTime(b, commonLastDownstreamTx, dur.s, dur.n)
	b = appendAddress(b, commonUpstreamAddr, c.Upstream, &ok)
	b, ok = appendString(b, commonCluster, c.UpstreamCluster, ok)
	b = c.appendFlags(b)
	var md int
	b, md = beginMessage(b, commonMetadata)
	b, ok = c.L7.appendMetadata(b, ok)
	b = endMessage(b, md)
	b, ok = appendString(b, commonRouteName, c.RouteName, ok)
	b = appendAddress(b, commonDirectRemote, c.Remote, &ok)
	b = appendTime(b, commonDuration, dur.s, dur.n)
	b, ok = appendString(b, commonTermination, c.TerminationDetails, ok)
	return endMessage(b, common), ok
}

// appendString appends a string field unless it is empty; the result is
// ok unless s is not UTF-8.
func appendString(b []byte, num protowire.Number, s string, ok bool) ([]byte, bool) {
	if s == "" {
		return b, ok
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s), ok && utf8.ValidString(s)
}

func (e *HTTPEntry) appendProto(b []byte) ([]byte, bool) {
	ok := true
	bounded := func(b []byte, num protowire.Number, v []byte) []byte {
		if len(v) == 0 {
			return b
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b, ok = appendBoundBytes(b, v, ok)
		return b
	}
	b, ok = e.CommonFields.appendProto(b, ok)

	if e.Protocol != 0 {
		b = protowire.AppendTag(b, entryProtocol, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Protocol))
	}

	// request
	var req int
	b, req = beginMessage(b, entryRequest)
	if e.Method != 0 {
		b = protowire.AppendTag(b, reqMethod, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Method))
	}
	b = bounded(b, reqScheme, e.Scheme)
	b = bounded(b, reqAuthority, e.Authority)
	b = bounded(b, reqPath, e.Path)
	b = bounded(b, reqUserAgent, e.UserAgent)
	b = bounded(b, reqForwardedFor, e.ForwardedFor)
	b = bounded(b, reqID, e.RequestID)
	b = endMessage(b, req)

	// response
	var resp int
	b, resp = beginMessage(b, entryResponse)
	if e.ResponseCode != 0 {
		var c int
		b, c = beginMessage(b, respCode)
		b = protowire.AppendTag(b, wrapperValue, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.ResponseCode))
		b = endMessage(b, c)
	}
	for i, kv := range e.Trailers {
		if trailerShadowed(e.Trailers, i) {
			continue
		}
		var t int
		b, t = beginMessage(b, respTrailers)
		b = protowire.AppendTag(b, mapKey, protowire.BytesType)
		b = protowire.AppendString(b, kv[0])
		b = protowire.AppendTag(b, mapValue, protowire.BytesType)
		b = protowire.AppendString(b, kv[1])
		b = endMessage(b, t)
		ok = ok && utf8.ValidString(kv[0]) && utf8.ValidString(kv[1])
	}
	b, ok = appendString(b, respDetails, e.ResponseCodeDetails, ok)
	b = endMessage(b, resp)
	return b, ok
}

// appendFlags appends response_flags when any flag is set.
func (c *CommonFields) appendFlags(b []byte) []byte {
	if c.Flags == 0 {
		return b
	}
	b, m := beginMessage(b, commonFlags)
	for i, num := range flagFields {
		if c.Flags&(1<<i) != 0 {
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, 1)
		}
	}
	return endMessage(b, m)
}

// appendMetadata appends the filter_metadata entry of l7meta.Namespace:
// a Struct of the fields.
func (l *L7Fields) appendMetadata(b []byte, ok bool) ([]byte, bool) {
	b, entry := beginMessage(b, filterMetadata)
	b = protowire.AppendTag(b, mapKey, protowire.BytesType)
	b = protowire.AppendString(b, l7meta.Namespace)
	b, st := beginMessage(b, mapValue)
	for i := range l.f {
		f := &l.f[i]
		if l.shadowed(i) {
			continue
		}
		ok = ok && utf8.ValidString(f.key)
		var fe, v int
		b, fe = beginMessage(b, structFields)
		b = protowire.AppendTag(b, mapKey, protowire.BytesType)
		b = protowire.AppendString(b, f.key)
		b, v = beginMessage(b, mapValue)
		switch f.kind {
		case l7String:
			b = protowire.AppendTag(b, valueString, protowire.BytesType)
			b, ok = appendBoundString(b, f.s, ok)
		case l7Bytes:
			b = protowire.AppendTag(b, valueString, protowire.BytesType)
			b, ok = appendBoundBytes(b, f.b, ok)
		case l7Number:
			b = protowire.AppendTag(b, valueNumber, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(f.num))
		case l7Bool:
			b = protowire.AppendTag(b, valueBool, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(f.num))
		case l7List:
			var lv int
			b, lv = beginMessage(b, valueList)
			b, ok = appendBoundList(b, f.list, ok)
			b = endMessage(b, lv)
		}
		b = endMessage(b, v)
		b = endMessage(b, fe)
	}
	b = endMessage(b, st)
	return endMessage(b, entry), ok
}

// shadowed reports whether a later field has the key of field i: as in a
// map, only the last is kept (and only its value must be UTF-8).
func (l *L7Fields) shadowed(i int) bool {
	for j := i + 1; j < len(l.f); j++ {
		if l.f[j].key == l.f[i].key {
			return true
		}
	}
	return false
}

// trailerShadowed is shadowed for response trailers.
func trailerShadowed(t [][2]string, i int) bool {
	for j := i + 1; j < len(t); j++ {
		if t[j][0] == t[i][0] {
			return true
		}
	}
	return false
}

// appendBoundList appends the ListValue values of l as BoundList cuts it.
func appendBoundList(b []byte, l []string, ok bool) ([]byte, bool) {
	n := len(l)
	cut := n > l7meta.MaxListItems
	if cut {
		n = l7meta.MaxListItems - 1
	}
	for _, s := range l[:n] {
		var v int
		b, v = beginMessage(b, listValues)
		b = protowire.AppendTag(b, valueString, protowire.BytesType)
		b, ok = appendBoundString(b, s, ok)
		b = endMessage(b, v)
	}
	if cut {
		var v int
		b, v = beginMessage(b, listValues)
		b = protowire.AppendTag(b, valueString, protowire.BytesType)
		b = protowire.AppendString(b, l7meta.TruncatedMark)
		b = endMessage(b, v)
	}
	return b, ok
}

// appendBoundString appends s, cut as Bound cuts it, as a length-prefixed
// string, and reports ok and whether what it wrote is UTF-8 (what was cut
// off does not matter, as with a Bound string marshalled).
func appendBoundString(b []byte, s string, ok bool) ([]byte, bool) {
	if len(s) <= l7meta.MaxFieldBytes {
		return protowire.AppendString(b, s), ok && utf8.ValidString(s)
	}
	n := runeCut(s, l7meta.MaxFieldBytes-len(l7meta.TruncatedMark))
	b = protowire.AppendVarint(b, uint64(n+len(l7meta.TruncatedMark)))
	return append(append(b, s[:n]...), l7meta.TruncatedMark...), ok && utf8.ValidString(s[:n])
}

// appendBoundBytes is appendBoundString for bytes, cut by AppendBound.
func appendBoundBytes(b, v []byte, ok bool) ([]byte, bool) {
	start := len(b)
	b = AppendBound(b, v)
	ok = ok && utf8.Valid(b[start:])
	// The length goes in front, as for a message's contents.
	return endMessage(b, start), ok
}

// appendAddress appends a socket address (nothing when invalid), rendered
// as Address renders it.
func appendAddress(b []byte, num protowire.Number, ap netip.AddrPort, ok *bool) []byte {
	if !ap.IsValid() {
		return b
	}
	b, a := beginMessage(b, num)
	b, s := beginMessage(b, addrSocket)
	b, v := beginMessage(b, sockAddress)
	b = ap.Addr().Unmap().AppendTo(b)
	// address is a string: its length prefix comes from endMessage. Only
	// an IPv6 zone can make it invalid UTF-8.
	if !utf8.Valid(b[v:]) {
		*ok = false
	}
	b = endMessage(b, v)
	b = protowire.AppendTag(b, sockPort, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(ap.Port()))
	b = endMessage(b, s)
	return endMessage(b, a)
}

type parts struct {
	s int64
	n int32
}

func durationParts(d time.Duration) parts {
	return parts{int64(d / time.Second), int32(d % time.Second)}
}

// appendTime appends a Timestamp or Duration (same fields); the message
// is present even when zero.
func appendTime(b []byte, num protowire.Number, s int64, n int32) []byte {
	b, m := beginMessage(b, num)
	if s != 0 {
		b = protowire.AppendTag(b, secondsField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s))
	}
	if n != 0 {
		b = protowire.AppendTag(b, nanosField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(n)))
	}
	return endMessage(b, m)
}

// beginMessage appends the tag of a length-delimited field and returns
// where its contents start; endMessage then inserts their length.
func beginMessage(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return b, len(b)
}

// endMessage inserts the length of the contents written since
// beginMessage in front of them. Contents are small (an entry is a few
// hundred bytes, bounded by the field caps), so moving them is cheap.
func endMessage(b []byte, start int) []byte {
	n := len(b) - start
	k := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, k)...)
	copy(b[start+k:], b[start:start+n])
	protowire.AppendVarint(b[start:start], uint64(n))
	return b
}
