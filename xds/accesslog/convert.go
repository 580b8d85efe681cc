package accesslog

import (
	"net/netip"
	"strings"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nodemesh/nodemesh/mesh/flow"
)

// view is b as a string without a copy: valid only while the message's
// bytes are (during Unmarshal). Every string a flow keeps is copied by
// own before Unmarshal returns.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// str is an l7 string value, trimmed; "" for a missing key or another
// kind.
func (e *entryState) str(k int) string {
	if v := &e.vals[k]; v.kind == kindString {
		return strings.TrimSpace(view(v.str))
	}
	return ""
}

// num is an l7 number value; 0 for a missing key or another kind.
func (e *entryState) num(k int) int {
	if v := &e.vals[k]; v.kind == kindNumber {
		return int(v.num)
	}
	return 0
}

// list is an l7 list of strings (at most MaxListItems+1 items, see
// value); nil for a missing key or another kind.
func (e *entryState) list(k int) []string {
	v := &e.vals[k]
	if v.kind != kindList || v.n == 0 {
		return nil
	}
	out := make([]string, v.n)
	for i := range out {
		out[i] = view(e.items[listSlot(k)][i])
	}
	return out
}

func (a *address) addrPort() (netip.AddrPort, bool) {
	if !a.socket || a.port > 0xffff {
		// A port that does not fit 16 bits is a malformed entry, not a
		// port to wrap onto another.
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(view(a.ip))
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.port)), true
}

func (s *stamp) duration() time.Duration {
	d := durationpb.Duration{Seconds: s.secs, Nanos: s.nanos}
	return d.AsDuration()
}

// common fills what HTTP and TCP entries share; false when the entry has
// no usable addresses. Its strings are taken within b.
func (e *entryState) common(b *budget) (flow.Flow, bool) {
	var f flow.Flow
	src, ok1 := e.remote.addrPort()
	dst, ok2 := e.local.addrPort()
	if !ok1 || !ok2 {
		return f, false
	}
	f.Source.Address, f.Destination.Address = src, dst
	if e.start.set {
		f.Time = time.Unix(e.start.secs, int64(e.start.nanos)).UTC()
	}
	if e.lastTx.set {
		f.Latency = e.lastTx.duration()
	} else if e.dur.set {
		f.Latency = e.dur.duration()
	}
	if e.md {
		f.Protocol = b.str(e.str(kProtocol))
		f.Verdict = b.str(e.str(kVerdict))
		f.Policy = b.str(e.str(kPolicy))
		f.Reason = b.str(e.str(kReason))
		// The identity the policy listener judged the peer with; the
		// flow store resolves the others from the address.
		if id := e.num(kSourceIdentity); id > 0 && id <= 1<<32-1 {
			f.Source.Identity = uint32(id)
		}
	}
	return f, true
}

// httpFlow converts a decoded HTTP entry; truncated says whether a
// string or a list had to be cut to the bounds (bounds.go). The flow's
// strings are views until own copies them.
func (e *entryState) httpFlow() (f flow.Flow, truncated, ok bool) {
	b := newBudget()
	f, ok = e.common(&b)
	if !ok {
		return f, false, false
	}
	f.HTTP = &flow.HTTP{
		Method:    methodName(e.method),
		Authority: b.str(view(e.authority)),
		Path:      b.str(view(e.path)),
		Status:    int(e.status),
		Version:   httpVersion(e.version),
	}
	if e.md {
		f.HTTP.MissingHeaders = b.list(e.list(kMissingHeaders))
		f.HTTP.RejectedHeaders = b.list(e.list(kRejectedHeaders))
	}
	if e.md && (f.Protocol == flow.ProtocolGRPC || e.str(kGRPCService) != "") {
		f.Protocol = flow.ProtocolGRPC
		f.GRPC = &flow.GRPC{Service: b.str(e.str(kGRPCService)), Method: b.str(e.str(kGRPCMethod)), Status: e.num(kGRPCStatus)}
	}
	if f.Protocol == "" {
		f.Protocol = flow.ProtocolHTTP
	}
	if f.Verdict == "" {
		switch {
		case f.HTTP.Status == 403 && !e.upstream:
			f.Verdict = flow.Dropped
		case f.HTTP.Status >= 500 && !e.upstream:
			f.Verdict = flow.Error
		default:
			f.Verdict = flow.Forwarded
		}
	}
	return f, b.truncated, true
}

// tcpFlow converts a decoded TCP entry (a connection, or a Kafka
// request); as httpFlow.
func (e *entryState) tcpFlow() (f flow.Flow, truncated, ok bool) {
	b := newBudget()
	f, ok = e.common(&b)
	if !ok {
		return f, false, false
	}
	if e.md && (f.Protocol == flow.ProtocolKafka || e.vals[kKafkaAPIKey].set) {
		f.Protocol = flow.ProtocolKafka
		f.Kafka = &flow.Kafka{
			APIKey:        e.num(kKafkaAPIKey),
			APIKeyName:    b.str(e.str(kKafkaAPIKeyName)),
			APIVersion:    e.num(kKafkaAPIVersion),
			CorrelationID: e.num(kKafkaCorrelationID),
			ClientID:      b.str(e.str(kKafkaClientID)),
			Topics:        b.list(e.list(kKafkaTopics)),
			ErrorCode:     e.num(kKafkaErrorCode),
			ErrorName:     b.str(e.str(kKafkaErrorName)),
		}
	}
	if f.Protocol == "" {
		f.Protocol = flow.ProtocolTCP
	}
	if f.Verdict == "" {
		f.Verdict = flow.Forwarded
	}
	return f, b.truncated, true
}

// methodNames are the names of request methods (the enum's), but the
// unspecified one, which a flow leaves empty.
var methodNames = func() map[int32]string {
	m := map[int32]string{}
	for n, s := range corev3.RequestMethod_name {
		if n != int32(corev3.RequestMethod_METHOD_UNSPECIFIED) {
			m[n] = s
		}
	}
	return m
}()

func methodName(v int32) string {
	if s, ok := methodNames[v]; ok || v == int32(corev3.RequestMethod_METHOD_UNSPECIFIED) {
		return s
	}
	// A number the enum does not name, as protobuf prints it.
	return corev3.RequestMethod(v).String()
}

func httpVersion(v int32) string {
	switch datav3.HTTPAccessLogEntry_HTTPVersion(v) {
	case datav3.HTTPAccessLogEntry_HTTP10:
		return "HTTP/1.0"
	case datav3.HTTPAccessLogEntry_HTTP11:
		return "HTTP/1.1"
	case datav3.HTTPAccessLogEntry_HTTP2:
		return "HTTP/2"
	case datav3.HTTPAccessLogEntry_HTTP3:
		return "HTTP/3"
	}
	return ""
}
