package resource

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestDecodeSourcePrefixRanges: filter_chain_match.source_prefix_ranges
// become the chain's source prefixes (canonical, v4-mapped addresses
// unmapped); two chains naming the same prefix, and malformed ranges, are
// refused with the field.
func TestDecodeSourcePrefixRanges(t *testing.T) {
	cidr := func(a string, n uint32) *corev3.CidrRange {
		return &corev3.CidrRange{AddressPrefix: a, PrefixLen: wrapperspb.UInt32(n)}
	}
	base := func() *listenerv3.Listener {
		l := testListener(t, testHCM(t, nil))
		consumer := proto.Clone(l.FilterChains[0]).(*listenerv3.FilterChain)
		consumer.Name = "consumer"
		consumer.FilterChainMatch = &listenerv3.FilterChainMatch{SourcePrefixRanges: []*corev3.CidrRange{
			cidr("10.244.1.30", 32), cidr("10.244.2.7", 24), cidr("::ffff:10.1.0.0", 112), cidr("fd00::1e", 128)}}
		l.FilterChains = append(l.FilterChains, consumer)
		return l
	}
	l, err := DecodeListener(mustAny(t, base()))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.244.1.30/32"), netip.MustParsePrefix("10.244.2.0/24"),
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::1e/128")}
	if len(l.Chains) != 2 || l.Chains[0].SourcePrefixes != nil || !slices.Equal(l.Chains[1].SourcePrefixes, want) {
		t.Fatalf("chains %+v / %+v", l.Chains[0], l.Chains[1])
	}
	if l.Chains[0].Key == l.Chains[1].Key {
		t.Fatal("chains with different matches share a key")
	}
	for _, tc := range []struct {
		name string
		mod  func(*listenerv3.Listener)
		want string
	}{
		{"same prefix on two chains", func(l *listenerv3.Listener) {
			l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{SourcePrefixRanges: []*corev3.CidrRange{cidr("10.244.2.0", 24)}}
		}, "filter_chains[1].filter_chain_match: matches the same connections as filter_chains[0]"},
		{"two chains without a match", func(l *listenerv3.Listener) { l.FilterChains[1].FilterChainMatch = nil },
			"filter_chains[1].filter_chain_match: matches the same connections as filter_chains[0]"},
		{"not an address", func(l *listenerv3.Listener) {
			l.FilterChains[1].FilterChainMatch.SourcePrefixRanges[1].AddressPrefix = "10.244.2"
		}, "filter_chains[1].filter_chain_match.source_prefix_ranges[1].address_prefix: \"10.244.2\" is not an IP address"},
		{"prefix too long", func(l *listenerv3.Listener) {
			l.FilterChains[1].FilterChainMatch.SourcePrefixRanges[0].PrefixLen = wrapperspb.UInt32(33)
		}, "filter_chains[1].filter_chain_match.source_prefix_ranges[0].prefix_len: 33 exceeds the address length 32"},
		{"direct source still unsupported", func(l *listenerv3.Listener) {
			l.FilterChains[1].FilterChainMatch.DirectSourcePrefixRanges = []*corev3.CidrRange{cidr("10.0.0.0", 8)}
		}, "filter_chain_match.direct_source_prefix_ranges: field not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := base()
			tc.mod(l)
			_, err := DecodeListener(mustAny(t, l))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDecodeTransportProtocol: filter_chain_match.transport_protocol takes
// the two values the TLS inspector detects; "tls" without the inspector
// could never match, and a chain differing from another only in its
// transport protocol is not a duplicate.
func TestDecodeTransportProtocol(t *testing.T) {
	base := func(first, second string, inspector bool) *listenerv3.Listener {
		l := testListener(t, testHCM(t, nil))
		other := proto.Clone(l.FilterChains[0]).(*listenerv3.FilterChain)
		other.Name = "second"
		l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: first}
		other.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: second}
		l.FilterChains = append(l.FilterChains, other)
		if inspector {
			l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
				ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{})}}}
		}
		return l
	}
	l, err := DecodeListener(mustAny(t, base("raw_buffer", "tls", true)))
	if err != nil {
		t.Fatal(err)
	}
	if l.Chains[0].TransportProtocol != TransportRawBuffer || l.Chains[1].TransportProtocol != TransportTLS || l.Chains[0].Key == l.Chains[1].Key {
		t.Fatalf("chains %+v / %+v", l.Chains[0], l.Chains[1])
	}
	if _, err := DecodeListener(mustAny(t, base("", "tls", true))); err != nil {
		t.Fatalf("a chain naming no transport beside a tls one: %v", err)
	}
	for _, tc := range []struct {
		name          string
		first, second string
		inspector     bool
		want          string
	}{
		{"unknown protocol", "raw_buffer", "quic", true, `filter_chains[1].filter_chain_match.transport_protocol: "quic" is not supported`},
		{"tls without the inspector", "raw_buffer", "tls", false, `filter_chains[1].filter_chain_match.transport_protocol: "tls" needs the tls_inspector listener filter`},
		{"same transport twice", "tls", "tls", true, "filter_chains[1].filter_chain_match: matches the same connections as filter_chains[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeListener(mustAny(t, base(tc.first, tc.second, tc.inspector)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
