package accesslog

import (
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// The conversion as it was before the wire decoder (decode.go): the
// decoded protobuf messages, the l7 metadata as a structpb.Struct. It is
// the reference the decoder is checked against (FuzzEntries,
// TestDecoderMatchesReference) and the "proto" side of BenchmarkDecode.

// refCommon fills what HTTP and TCP entries share; false when the entry has
// no usable addresses. Its strings are taken within b.
func refCommon(c *datav3.AccessLogCommon, b *budget) (flow.Flow, *structpb.Struct, bool) {
	var f flow.Flow
	src, ok1 := refAddrPort(c.GetDownstreamRemoteAddress())
	dst, ok2 := refAddrPort(c.GetDownstreamLocalAddress())
	if !ok1 || !ok2 {
		return f, nil, false
	}
	f.Source.Address, f.Destination.Address = src, dst
	if t := c.GetStartTime(); t != nil {
		f.Time = t.AsTime()
	}
	if d := c.GetTimeToLastDownstreamTxByte(); d != nil {
		f.Latency = d.AsDuration()
	} else if d := c.GetDuration(); d != nil {
		f.Latency = d.AsDuration()
	}
	md := c.GetMetadata().GetFilterMetadata()[l7meta.Namespace]
	if md != nil {
		f.Protocol = b.str(refStr(md, l7meta.Protocol))
		f.Verdict = b.str(refStr(md, l7meta.Verdict))
		f.Policy = b.str(refStr(md, l7meta.Policy))
		f.Reason = b.str(refStr(md, l7meta.Reason))
		// The identity the policy listener judged the peer with; the
		// flow store resolves the others from the address.
		if id := refNum(md, l7meta.SourceIdentity); id > 0 && id <= 1<<32-1 {
			f.Source.Identity = uint32(id)
		}
	}
	return f, md, true
}

// refHTTP converts an HTTP entry; truncated says whether a string or a
// list had to be cut to the bounds (bounds.go).
func refHTTP(e *datav3.HTTPAccessLogEntry) (f flow.Flow, truncated, ok bool) {
	b := newBudget()
	f, md, ok := refCommon(e.GetCommonProperties(), &b)
	if !ok {
		return f, false, false
	}
	req, resp := e.GetRequest(), e.GetResponse()
	f.HTTP = &flow.HTTP{
		Method:    req.GetRequestMethod().String(),
		Authority: b.str(req.GetAuthority()),
		Path:      b.str(req.GetPath()),
		Status:    int(resp.GetResponseCode().GetValue()),
		Version:   httpVersion(int32(e.GetProtocolVersion())),
	}
	if f.HTTP.Method == corev3.RequestMethod_METHOD_UNSPECIFIED.String() {
		f.HTTP.Method = ""
	}
	if md != nil {
		f.HTTP.MissingHeaders = b.list(refList(md, l7meta.MissingHeaders))
		f.HTTP.RejectedHeaders = b.list(refList(md, l7meta.RejectedHeaders))
	}
	if md != nil && (f.Protocol == flow.ProtocolGRPC || refStr(md, l7meta.GRPCService) != "") {
		f.Protocol = flow.ProtocolGRPC
		f.GRPC = &flow.GRPC{Service: b.str(refStr(md, l7meta.GRPCService)), Method: b.str(refStr(md, l7meta.GRPCMethod)), Status: refNum(md, l7meta.GRPCStatus)}
	}
	if f.Protocol == "" {
		f.Protocol = flow.ProtocolHTTP
	}
	if f.Verdict == "" {
		upstream := e.GetCommonProperties().GetUpstreamRemoteAddress() != nil
		switch {
		case f.HTTP.Status == 403 && !upstream:
			f.Verdict = flow.Dropped
		case f.HTTP.Status >= 500 && !upstream:
			f.Verdict = flow.Error
		default:
			f.Verdict = flow.Forwarded
		}
	}
	return f, b.truncated, true
}

// refTCP converts a TCP entry (a connection, or a Kafka request); as
// refHTTP.
func refTCP(e *datav3.TCPAccessLogEntry) (f flow.Flow, truncated, ok bool) {
	b := newBudget()
	f, md, ok := refCommon(e.GetCommonProperties(), &b)
	if !ok {
		return f, false, false
	}
	if md != nil && (f.Protocol == flow.ProtocolKafka || md.GetFields()[l7meta.KafkaAPIKey] != nil) {
		f.Protocol = flow.ProtocolKafka
		f.Kafka = &flow.Kafka{
			APIKey:        refNum(md, l7meta.KafkaAPIKey),
			APIKeyName:    b.str(refStr(md, l7meta.KafkaAPIKeyName)),
			APIVersion:    refNum(md, l7meta.KafkaAPIVersion),
			CorrelationID: refNum(md, l7meta.KafkaCorrelationID),
			ClientID:      b.str(refStr(md, l7meta.KafkaClientID)),
			Topics:        b.list(refList(md, l7meta.KafkaTopics)),
			ErrorCode:     refNum(md, l7meta.KafkaErrorCode),
			ErrorName:     b.str(refStr(md, l7meta.KafkaErrorName)),
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

func refAddrPort(a *corev3.Address) (netip.AddrPort, bool) {
	sa := a.GetSocketAddress()
	if sa == nil || sa.GetPortValue() > 0xffff {
		// A port that does not fit 16 bits is a malformed entry, not a
		// port to wrap onto another.
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue())), true
}

func refStr(s *structpb.Struct, key string) string {
	return strings.TrimSpace(s.GetFields()[key].GetStringValue())
}

func refNum(s *structpb.Struct, key string) int {
	return int(s.GetFields()[key].GetNumberValue())
}

// list reads a list of strings, at most one item beyond MaxListItems (so
// that budget.list sees it was longer).
func refList(s *structpb.Struct, key string) []string {
	var out []string
	for _, v := range s.GetFields()[key].GetListValue().GetValues() {
		if len(out) > MaxListItems {
			break
		}
		out = append(out, v.GetStringValue())
	}
	return out
}
