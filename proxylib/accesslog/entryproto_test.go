package accesslog

import (
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// messageOf builds e as the connection manager built entries before they
// were encoded by hand: message by message (Common for the common
// properties, structpb for the L7 fields, Bound and BoundList for the
// caps), for protobuf's reflection-based marshal.
func messageOf(e *HTTPEntry) *datav3.HTTPAccessLogEntry {
	c := commonOf(&e.CommonFields)
	req := &datav3.HTTPRequestProperties{RequestMethod: e.Method,
		Scheme: Bound(string(e.Scheme)), Authority: Bound(string(e.Authority)), Path: Bound(string(e.Path)),
		UserAgent: Bound(string(e.UserAgent)), RequestId: Bound(string(e.RequestID)), ForwardedFor: Bound(string(e.ForwardedFor))}
	resp := &datav3.HTTPResponseProperties{ResponseCodeDetails: e.ResponseCodeDetails}
	if e.ResponseCode != 0 {
		resp.ResponseCode = wrapperspb.UInt32(e.ResponseCode)
	}
	if len(e.Trailers) > 0 {
		resp.ResponseTrailers = map[string]string{}
		for _, kv := range e.Trailers {
			resp.ResponseTrailers[kv[0]] = kv[1]
		}
	}
	return &datav3.HTTPAccessLogEntry{CommonProperties: c, ProtocolVersion: e.Protocol, Request: req, Response: resp}
}

// commonOf builds the common properties message by message.
func commonOf(e *CommonFields) *datav3.AccessLogCommon {
	c := Common(e.Start, e.Duration, e.Remote, e.Local, e.Upstream, e.UpstreamCluster, nil)
	c.RouteName = e.RouteName
	c.ConnectionTerminationDetails = e.TerminationDetails
	if e.Flags != 0 {
		c.ResponseFlags = &datav3.ResponseFlags{
			NoRouteFound:                  e.Flags&NoRouteFound != 0,
			NoClusterFound:                e.Flags&NoClusterFound != 0,
			NoHealthyUpstream:             e.Flags&NoHealthyUpstream != 0,
			UpstreamConnectionFailure:     e.Flags&UpstreamConnectionFailure != 0,
			UpstreamConnectionTermination: e.Flags&UpstreamConnectionTermination != 0,
			UpstreamRequestTimeout:        e.Flags&UpstreamRequestTimeout != 0,
			UpstreamProtocolError:         e.Flags&UpstreamProtocolError != 0,
			NoFilterConfigFound:           e.Flags&NoFilterConfigFound != 0,
			DownstreamProtocolError:       e.Flags&DownstreamProtocolError != 0,
			UpstreamOverflow:              e.Flags&UpstreamOverflow != 0,
			StreamIdleTimeout:             e.Flags&StreamIdleTimeout != 0,
			UpstreamRemoteReset:           e.Flags&UpstreamRemoteReset != 0,
			UpstreamRetryLimitExceeded:    e.Flags&UpstreamRetryLimitExceeded != 0,
		}
	}
	fields := map[string]*structpb.Value{}
	for _, f := range e.L7.f {
		switch f.kind {
		case l7String:
			fields[f.key] = structpb.NewStringValue(Bound(f.s))
		case l7Bytes:
			fields[f.key] = structpb.NewStringValue(Bound(string(f.b)))
		case l7Number:
			fields[f.key] = structpb.NewNumberValue(f.num)
		case l7Bool:
			fields[f.key] = structpb.NewBoolValue(f.num != 0)
		case l7List:
			l := BoundList(f.list)
			vals := make([]*structpb.Value, len(l))
			for i, s := range l {
				vals[i] = structpb.NewStringValue(s)
			}
			fields[f.key] = structpb.NewListValue(&structpb.ListValue{Values: vals})
		}
	}
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{l7meta.Namespace: {Fields: fields}}}
	return c
}

// checkEncoded encodes e and holds the bytes to the message-by-message
// entry: both fail (a string that is not UTF-8) or the bytes decode to an
// equal message. It also checks the caps on what was decoded.
func checkEncoded(t *testing.T, e *HTTPEntry) {
	t.Helper()
	var got datav3.HTTPAccessLogEntry
	if !checkWire(t, messageOf(e), e.AppendProto, &got) {
		return
	}
	r := got.GetRequest()
	for _, s := range []string{r.GetScheme(), r.GetAuthority(), r.GetPath(), r.GetUserAgent(), r.GetRequestId(), r.GetForwardedFor()} {
		if len(s) > l7meta.MaxFieldBytes {
			t.Fatalf("a request field of %d bytes", len(s))
		}
	}
	checkL7Bounds(t, got.GetCommonProperties())
}

// checkWire encodes with appendProto and holds the bytes to want: both
// fail or the bytes decode (into got) to an equal message. It reports
// whether got was decoded.
func checkWire(t *testing.T, want proto.Message, appendProto func([]byte) ([]byte, error), got proto.Message) bool {
	t.Helper()
	_, wantErr := proto.Marshal(want)
	prefix := []byte("prefix")
	b, err := appendProto(prefix)
	if string(b[:len(prefix)]) != "prefix" {
		t.Fatalf("the bytes before the entry changed: %q", b[:len(prefix)])
	}
	if err != nil || wantErr != nil {
		if !errors.Is(err, ErrNotUTF8) || wantErr == nil {
			t.Fatalf("encoding: %v; marshalling the message: %v", err, wantErr)
		}
		if len(b) != len(prefix) {
			t.Fatalf("a failed entry left %d bytes", len(b)-len(prefix))
		}
		return false
	}
	if err := proto.Unmarshal(b[len(prefix):], got); err != nil {
		t.Fatalf("decoding the encoded entry: %v", err)
	}
	if !proto.Equal(want, got) {
		t.Fatalf("encoded entry differs (-message by message +encoded):\n%s", cmp.Diff(want, got, protocmp.Transform()))
	}
	return true
}

// checkL7Bounds checks the caps of the L7 fields.
func checkL7Bounds(t *testing.T, c *datav3.AccessLogCommon) {
	t.Helper()
	for k, v := range c.GetMetadata().GetFilterMetadata()[l7meta.Namespace].GetFields() {
		if len(v.GetStringValue()) > l7meta.MaxFieldBytes || len(v.GetListValue().GetValues()) > l7meta.MaxListItems {
			t.Fatalf("L7 field %s over its bounds", k)
		}
		for _, item := range v.GetListValue().GetValues() {
			if len(item.GetStringValue()) > l7meta.MaxFieldBytes {
				t.Fatalf("an item of L7 field %s over its bound", k)
			}
		}
	}
}

func policyHopEntry() *HTTPEntry {
	e := &HTTPEntry{
		CommonFields: CommonFields{Start: time.Unix(1765000000, 123456789), Duration: 734 * time.Microsecond,
			Remote:   netip.MustParseAddrPort("10.0.1.5:41234"),
			Local:    netip.MustParseAddrPort("10.0.2.7:80"),
			Upstream: netip.MustParseAddrPort("10.0.2.7:80"), UpstreamCluster: "policy/original-dst", RouteName: "route/0"},
		Protocol: datav3.HTTPAccessLogEntry_HTTP11, Method: corev3.RequestMethod_GET,
		Scheme: []byte("http"), Authority: []byte("deathstar.empire.svc"), Path: []byte("/v1/request-landing"),
		UserAgent: []byte("curl/8.5.0"), RequestID: []byte("0b7e6f4a-5d1c-4c1e-9d7a-2f6c1f3b8e11"), ForwardedFor: []byte("10.0.0.9"),
		ResponseCode: 200, ResponseCodeDetails: "via_upstream",
	}
	e.L7.String(l7meta.Protocol, "http")
	e.L7.String(l7meta.Verdict, l7meta.VerdictForwarded)
	e.L7.String(l7meta.Policy, "default/allow-get")
	e.L7.Number(l7meta.SourceIdentity, 8)
	return e
}

// TestHTTPEntryEncodesAsTheMessage holds the hand-written encoder to the
// message-by-message entry for chosen entries: every optional field, the
// zero and absent values, truncation, IPv6, gRPC, header lists.
func TestHTTPEntryEncodesAsTheMessage(t *testing.T) {
	big := strings.Repeat("é", l7meta.MaxFieldBytes) // cut on a rune boundary
	many := make([]string, 40)
	for i := range many {
		many[i] = "x-h-" + strconv.Itoa(i)
	}
	cases := []struct {
		name string
		edit func(*HTTPEntry)
	}{
		{"policy hop", func(*HTTPEntry) {}},
		{"empty", func(e *HTTPEntry) { *e = HTTPEntry{} }},
		{"zero times and values", func(e *HTTPEntry) {
			e.Start, e.Duration, e.ResponseCode, e.Method, e.Protocol = time.Unix(0, 0), 0, 0, 0, 0
			e.L7.Number(l7meta.GRPCStatus, 0)
			e.L7.String("empty", "")
			e.L7.Bool("false", false)
			e.L7.Bool("true", true)
			e.L7.List("empty list", []string{})
		}},
		{"zero time, negative duration", func(e *HTTPEntry) { e.Start, e.Duration = time.Time{}, -1500*time.Millisecond }},
		{"no addresses", func(e *HTTPEntry) {
			e.Remote, e.Local, e.Upstream = netip.AddrPort{}, netip.AddrPort{}, netip.AddrPort{}
		}},
		{"IPv6 and mapped", func(e *HTTPEntry) {
			e.Remote = netip.MustParseAddrPort("[2001:db8::5]:41234")
			e.Local = netip.MustParseAddrPort("[::ffff:10.0.2.7]:0")
			e.Upstream = netip.MustParseAddrPort("[fe80::1%eth0]:65535")
		}},
		{"every flag", func(e *HTTPEntry) { e.Flags = 1<<numResponseFlags - 1 }},
		{"termination details", func(e *HTTPEntry) { e.TerminationDetails = "upstream connect error" }},
		{"some flags", func(e *HTTPEntry) { e.Flags = NoHealthyUpstream | UpstreamRetryLimitExceeded }},
		{"denied", func(e *HTTPEntry) {
			e.ResponseCode, e.ResponseCodeDetails = 403, "rbac_access_denied"
			e.L7.String(l7meta.Verdict, l7meta.VerdictDropped) // the later value wins
			e.L7.String(l7meta.Reason, "no rule matched")
			e.L7.List(l7meta.MissingHeaders, []string{"x-token"})
			e.L7.List(l7meta.RejectedHeaders, []string{"x-mode: bad", "x-other: 1"})
		}},
		{"grpc", func(e *HTTPEntry) {
			e.Protocol = datav3.HTTPAccessLogEntry_HTTP2
			e.L7.Bytes(l7meta.GRPCService, []byte("empire.Deathstar"))
			e.L7.Bytes(l7meta.GRPCMethod, []byte("Fire"))
			e.L7.Number(l7meta.GRPCStatus, 7)
			e.Trailers = append(e.Trailers, [2]string{"grpc-status", "7"})
		}},
		{"truncated", func(e *HTTPEntry) {
			e.Path = []byte("/" + big)
			e.Authority = []byte(big)
			e.UserAgent = []byte(strings.Repeat("u", 3*l7meta.MaxFieldBytes))
			e.L7.String(l7meta.Policy, big)
			e.L7.Bytes(l7meta.GRPCMethod, []byte(big))
			e.L7.List(l7meta.MissingHeaders, many)
			e.L7.List(l7meta.RejectedHeaders, []string{big, "ok"})
		}},
		{"exactly at the bounds", func(e *HTTPEntry) {
			e.Path = []byte(strings.Repeat("p", l7meta.MaxFieldBytes))
			e.L7.List(l7meta.MissingHeaders, many[:l7meta.MaxListItems])
		}},
		{"not UTF-8 in the path", func(e *HTTPEntry) { e.Path = []byte("/\xff") }},
		{"not UTF-8 in an L7 field", func(e *HTTPEntry) { e.L7.String(l7meta.Reason, "\xc3") }},
		{"not UTF-8 in a list", func(e *HTTPEntry) { e.L7.List(l7meta.MissingHeaders, []string{"a", "\x80"}) }},
		{"not UTF-8 only past the bound", func(e *HTTPEntry) { e.Path = []byte(big + "\xff") }},
		{"not UTF-8 in a zone", func(e *HTTPEntry) {
			e.Upstream = netip.AddrPortFrom(netip.MustParseAddr("fe80::1").WithZone("\xff"), 1)
		}},
		{"not UTF-8 in the details", func(e *HTTPEntry) { e.ResponseCodeDetails = "\xfe" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := policyHopEntry()
			tc.edit(e)
			checkEncoded(t, e)
		})
	}
}

// randomEntry fills an entry with random values, each field absent,
// empty, short, long or not UTF-8 at random.
func randomEntry(r *rand.Rand, e *HTTPEntry) {
	str := func() string {
		switch r.IntN(8) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("ä", r.IntN(3*l7meta.MaxFieldBytes/2))
		case 2:
			return string([]byte{byte(r.IntN(256)), byte(r.IntN(256))})
		default:
			b := make([]byte, r.IntN(40))
			for i := range b {
				b[i] = byte(' ' + r.IntN(95))
			}
			return string(b)
		}
	}
	addr := func() netip.AddrPort {
		switch r.IntN(4) {
		case 0:
			return netip.AddrPort{}
		case 1:
			var a [16]byte
			for i := range a {
				a[i] = byte(r.IntN(256))
			}
			return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(r.IntN(65536)))
		case 2:
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), 0, 1}).Unmap(), uint16(r.IntN(65536)))
		default:
			return netip.AddrPortFrom(netip.AddrFrom16(netip.AddrFrom4([4]byte{192, 0, 2, 1}).As16()), 80)
		}
	}
	e.Reset()
	e.Start = time.Unix(r.Int64N(1<<34)-1<<33, r.Int64N(1e9))
	e.Duration = time.Duration(r.Int64() - math.MaxInt64/2)
	e.Remote, e.Local, e.Upstream = addr(), addr(), addr()
	e.UpstreamCluster, e.RouteName, e.TerminationDetails = str(), str(), str()
	e.Flags = ResponseFlags(r.Uint32()) & (1<<numResponseFlags - 1)
	e.Protocol = datav3.HTTPAccessLogEntry_HTTPVersion(r.IntN(4))
	e.Method = corev3.RequestMethod(r.IntN(10))
	e.Scheme, e.Authority, e.Path = []byte(str()), []byte(str()), []byte(str())
	e.UserAgent, e.RequestID, e.ForwardedFor = []byte(str()), []byte(str()), []byte(str())
	e.ResponseCode = uint32(r.IntN(3)) * r.Uint32()
	e.ResponseCodeDetails = str()
	for range r.IntN(3) {
		e.Trailers = append(e.Trailers, [2]string{str(), str()})
	}
	keys := []string{l7meta.Protocol, l7meta.Verdict, l7meta.Policy, l7meta.Reason, l7meta.MissingHeaders, "other"}
	for range r.IntN(10) {
		k := keys[r.IntN(len(keys))]
		switch r.IntN(5) {
		case 0:
			e.L7.String(k, str())
		case 1:
			e.L7.Bytes(k, []byte(str()))
		case 2:
			e.L7.Number(k, r.NormFloat64()*1e6)
		case 3:
			e.L7.Bool(k, r.IntN(2) == 0)
		default:
			l := make([]string, r.IntN(2*l7meta.MaxListItems))
			for i := range l {
				l[i] = str()
			}
			e.L7.List(k, l)
		}
	}
}

// TestHTTPEntryRandomEncodesAsTheMessage: random entries, one entry
// value reused as a connection reuses it; the same common fields as a
// TCP entry.
func TestHTTPEntryRandomEncodesAsTheMessage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var e HTTPEntry
	var tcp TCPEntry
	for range 2000 {
		randomEntry(r, &e)
		checkEncoded(t, &e)
		tcp.Reset()
		tcp.CommonFields = e.CommonFields
		checkTCP(t, &tcp)
	}
}

// checkTCP is checkEncoded for a TCP entry.
func checkTCP(t *testing.T, e *TCPEntry) {
	t.Helper()
	var got datav3.TCPAccessLogEntry
	if checkWire(t, &datav3.TCPAccessLogEntry{CommonProperties: commonOf(&e.CommonFields)}, e.AppendProto, &got) {
		checkL7Bounds(t, got.GetCommonProperties())
	}
}

// TestTCPEntryEncodesAsTheMessage: a connection's entry and a Kafka
// request's, as the TCP proxy logs them.
func TestTCPEntryEncodesAsTheMessage(t *testing.T) {
	conn := &TCPEntry{CommonFields: CommonFields{Start: time.Unix(1765000000, 5), Duration: 3 * time.Second,
		Remote: netip.MustParseAddrPort("10.0.1.5:41234"), Local: netip.MustParseAddrPort("10.0.2.7:9092"),
		UpstreamCluster: "policy/original-dst", TerminationDetails: "upstream connect error"}}
	conn.L7.String(l7meta.Protocol, "tcp")
	conn.L7.String(l7meta.Reason, "upstream connect error")
	checkTCP(t, conn)
	kafka := &TCPEntry{CommonFields: CommonFields{Start: time.Unix(1765000000, 5), Duration: 300 * time.Microsecond,
		Remote: netip.MustParseAddrPort("[2001:db8::5]:41234"), Local: netip.MustParseAddrPort("[2001:db8::7]:9092"),
		Upstream: netip.MustParseAddrPort("[2001:db8::7]:9092"), UpstreamCluster: "policy/original-dst"}}
	for _, f := range []func(*L7Fields){
		func(l *L7Fields) { l.String(l7meta.Protocol, "kafka") },
		func(l *L7Fields) { l.Number(l7meta.KafkaAPIKey, 0) },
		func(l *L7Fields) { l.String(l7meta.KafkaAPIKeyName, "Produce") },
		func(l *L7Fields) { l.Number(l7meta.KafkaAPIVersion, 9) },
		func(l *L7Fields) { l.Number(l7meta.KafkaCorrelationID, -7) },
		func(l *L7Fields) { l.String(l7meta.KafkaClientID, "rdkafka") },
		func(l *L7Fields) { l.List(l7meta.KafkaTopics, []string{"empire-announce", "deathstar-plans"}) },
		func(l *L7Fields) { l.Number(l7meta.KafkaErrorCode, 29) },
		func(l *L7Fields) { l.String(l7meta.KafkaErrorName, "TOPIC_AUTHORIZATION_FAILED") },
		func(l *L7Fields) { l.Number(l7meta.SourceIdentity, 12345) },
		func(l *L7Fields) { l.String(l7meta.Verdict, l7meta.VerdictDropped) },
	} {
		f(&kafka.L7)
		checkTCP(t, kafka)
	}
}

// FuzzHTTPEntry: whatever the request carried, the encoded entry (HTTP,
// and its common fields as a TCP entry) decodes, equals the
// message-by-message entry and keeps to the caps; or both refuse it (not
// UTF-8).
func FuzzHTTPEntry(f *testing.F) {
	f.Add("http", "deathstar.empire.svc", "/v1/request-landing", "curl/8.5.0", "10.0.0.9", "default/allow-get", "x-token\nx-mode: bad",
		int64(1765000000123456789), int64(734000), []byte{10, 0, 1, 5}, uint16(41234), uint32(0), uint32(200), 8.0, false)
	f.Add("", "", "/empire.Deathstar/Fire", "", "", "", "", int64(0), int64(0), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}, uint16(0), uint32(1<<numResponseFlags-1), uint32(0), 0.0, true)
	f.Add(strings.Repeat("s", 5000), "\xff", "/"+strings.Repeat("é", 3000), "ua", "xff", strings.Repeat("p", 4097), strings.Repeat("h\n", 40),
		int64(-1), int64(-1), []byte{}, uint16(65535), uint32(5), uint32(1<<31), -1.5, true)
	f.Fuzz(func(t *testing.T, scheme, authority, path, ua, xff, policy, list string, start, dur int64, ip []byte, port uint16,
		flags, code uint32, num float64, grpc bool) {
		if math.IsNaN(num) {
			num = 0 // NaN never equals itself, in either form
		}
		e := &HTTPEntry{CommonFields: CommonFields{Start: time.Unix(0, start), Duration: time.Duration(dur),
			Flags: ResponseFlags(flags) & (1<<numResponseFlags - 1), UpstreamCluster: scheme, RouteName: authority,
			TerminationDetails: list},
			ResponseCode: code, Method: corev3.RequestMethod(code % 11), Protocol: datav3.HTTPAccessLogEntry_HTTPVersion(flags % 4),
			Scheme: []byte(scheme), Authority: []byte(authority), Path: []byte(path), UserAgent: []byte(ua),
			ForwardedFor: []byte(xff), RequestID: []byte(policy), ResponseCodeDetails: ua}
		if a, ok := netip.AddrFromSlice(ip); ok {
			e.Remote = netip.AddrPortFrom(a, port)
			e.Upstream = netip.AddrPortFrom(a.WithZone(xff), port)
		}
		e.L7.String(l7meta.Policy, policy)
		e.L7.Number(l7meta.SourceIdentity, num)
		e.L7.List(l7meta.MissingHeaders, strings.Split(list, "\n"))
		e.L7.Bool("grpc", grpc)
		if grpc {
			e.L7.Bytes(l7meta.GRPCService, []byte(path))
			e.Trailers = append(e.Trailers, [2]string{"grpc-status", xff})
		}
		checkEncoded(t, e)
		checkTCP(t, &TCPEntry{CommonFields: e.CommonFields})
	})
}

// TestHTTPEntryAllocations: encoding an entry into a buffer that has
// grown allocates nothing.
func TestHTTPEntryAllocations(t *testing.T) {
	e := policyHopEntry()
	e.L7.List(l7meta.MissingHeaders, []string{"x-token"})
	b, _ := e.AppendProto(nil)
	got := testing.AllocsPerRun(100, func() {
		b, _ = e.AppendProto(b[:0])
	})
	if got != 0 {
		t.Fatalf("encoding an entry allocates %.0f times, want none", got)
	}
}

// TestResetKeepsNoBuffers: a reset entry keeps its storage but no
// reference into the buffers its fields viewed (a connection lends its
// read buffer back while idle).
func TestResetKeepsNoBuffers(t *testing.T) {
	e := policyHopEntry()
	e.L7.Bytes(l7meta.GRPCMethod, []byte("Fire"))
	e.L7.List(l7meta.MissingHeaders, []string{"x-token"})
	e.Trailers = append(e.Trailers, [2]string{"grpc-status", "7"})
	e.Reset()
	if e.Path != nil || e.UserAgent != nil || e.L7.Len() != 0 || len(e.Trailers) != 0 {
		t.Fatalf("reset entry still has fields: %+v", e)
	}
	for i, f := range e.L7.f[:cap(e.L7.f)] {
		if f.b != nil || f.list != nil || f.s != "" || f.key != "" {
			t.Fatalf("L7 storage slot %d still holds %+v", i, f)
		}
	}
	for i, kv := range e.Trailers[:cap(e.Trailers)] {
		if kv != [2]string{} {
			t.Fatalf("trailer storage slot %d still holds %q", i, kv)
		}
	}
	tcp := &TCPEntry{}
	tcp.L7.Bytes("k", []byte("v"))
	tcp.Reset()
	if f := tcp.L7.f[:1][0]; f.b != nil || f.key != "" {
		t.Fatalf("TCP L7 storage still holds %+v", f)
	}
}
