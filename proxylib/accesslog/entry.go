package accesslog

import (
	"net/netip"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// Address renders an address for an entry (nil when invalid).
func Address(ap netip.AddrPort) *corev3.Address {
	if !ap.IsValid() {
		return nil
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ap.Addr().Unmap().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())}}}}
}

// Common fills the properties every entry carries, as a message for Log.
// The proxy's own loggers encode CommonFields instead; Common stays the
// message-by-message form their differential tests hold the bytes to.
// l7 holds the
// l7meta fields (string, number, bool or []string values); nil adds no
// metadata. Strings and lists are cut to the schema's field bounds
// (Bound, BoundList).
func Common(start time.Time, dur time.Duration, remote, local, upstream netip.AddrPort, cluster string, l7 map[string]any) *datav3.AccessLogCommon {
	c := &datav3.AccessLogCommon{
		StartTime:                     timestamppb.New(start),
		Duration:                      durationpb.New(dur),
		TimeToLastDownstreamTxByte:    durationpb.New(dur),
		DownstreamRemoteAddress:       Address(remote),
		DownstreamDirectRemoteAddress: Address(remote),
		DownstreamLocalAddress:        Address(local),
		UpstreamRemoteAddress:         Address(upstream),
		UpstreamCluster:               cluster,
	}
	if l7 != nil {
		fields := make(map[string]*structpb.Value, len(l7))
		for k, v := range l7 {
			switch x := v.(type) {
			case string:
				fields[k] = structpb.NewStringValue(Bound(x))
			case int:
				fields[k] = structpb.NewNumberValue(float64(x))
			case int16:
				fields[k] = structpb.NewNumberValue(float64(x))
			case int32:
				fields[k] = structpb.NewNumberValue(float64(x))
			case uint32:
				fields[k] = structpb.NewNumberValue(float64(x))
			case bool:
				fields[k] = structpb.NewBoolValue(x)
			case []string:
				x = BoundList(x)
				vals := make([]*structpb.Value, len(x))
				for i, s := range x {
					vals[i] = structpb.NewStringValue(s)
				}
				fields[k] = structpb.NewListValue(&structpb.ListValue{Values: vals})
			}
		}
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{l7meta.Namespace: {Fields: fields}}}
	}
	return c
}
