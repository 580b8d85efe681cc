package resource

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	origsrcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	datapathv1 "github.com/nodemesh/nodemesh/proxylib/api/datapath/v1"
	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

// DecodeListener decodes and validates a Listener resource.
func DecodeListener(a *anypb.Any) (*Listener, error) {
	var l listenerv3.Listener
	if err := unpack(a, ListenerType, &l); err != nil {
		return nil, &ResourceError{Kind: "listener", Name: "", Err: err}
	}
	out, err := decodeListener(&l)
	if err != nil {
		return nil, &ResourceError{Kind: "listener", Name: l.GetName(), Err: err}
	}
	return out, nil
}

func decodeListener(l *listenerv3.Listener) (*Listener, error) {
	if l.GetName() == "" {
		return nil, fieldErr(path{"name"}, "must not be empty")
	}
	if err := check(l); err != nil {
		return nil, err
	}
	addr, udp, err := listenerAddress(l.GetAddress(), path{"address"})
	if err != nil {
		return nil, err
	}
	out := &Listener{Name: l.GetName(), Address: addr, BufferLimit: DefaultBufferLimit,
		FiltersTimeout: duration(l.GetListenerFiltersTimeout(), DefaultListenerFiltersTimeout)}
	if out.FiltersTimeout < 0 {
		return nil, fieldErr(path{"listener_filters_timeout"}, "must not be negative")
	}
	out.ContinueOnFiltersTimeout = l.GetContinueOnListenerFiltersTimeout()
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		out.BufferLimit = v.GetValue()
	}
	if udp {
		u, err := decodeUDPListener(l)
		if err != nil {
			return nil, err
		}
		out.UDP = u
		return out, nil
	}
	if l.GetUdpListenerConfig() != nil {
		return nil, fieldErr(path{"udp_listener_config"}, "only for listeners whose socket_address.protocol is UDP")
	}
	out.Transparent = l.GetTransparent().GetValue()
	for i, lf := range l.GetListenerFilters() {
		fp := path{"listener_filters", "[" + strconv.Itoa(i) + "]", "typed_config"}
		switch lf.GetTypedConfig().GetTypeUrl() {
		case "type.googleapis.com/" + tlsInspect:
			var ti tlsinspectorv3.TlsInspector
			if err := lf.GetTypedConfig().UnmarshalTo(&ti); err != nil {
				return nil, fieldErr(fp, "decoding: %v", err)
			}
			out.TLSInspector = true
			out.Inspector = decodeTLSInspector(&ti)
		case "type.googleapis.com/" + origDstName:
			out.OriginalDst = true
		case "type.googleapis.com/" + origSrcName:
			var os origsrcv3.OriginalSrc
			if err := lf.GetTypedConfig().UnmarshalTo(&os); err != nil {
				return nil, fieldErr(fp, "decoding: %v", err)
			}
			if os.GetBindPort() {
				return nil, fieldErr(append(fp, "(OriginalSrc)", "bind_port"), "binding the client's port is not supported by nodemesh-proxy (it would collide with the client's own connection)")
			}
			out.OriginalSrc = &OriginalSrc{Mark: os.GetMark()}
		case datapathv1.TypeURL:
			var di datapathv1.DatapathIdentity
			if err := lf.GetTypedConfig().UnmarshalTo(&di); err != nil {
				return nil, fieldErr(fp, "decoding: %v", err)
			}
			if err := di.Validate(); err != nil {
				return nil, fieldErr(fp, "%v", err)
			}
			if !out.Transparent {
				return nil, fieldErr(fp, "the datapath identity filter needs a transparent listener (the datapath redirects to it)")
			}
			out.ConntrackMap = di.GetConntrackMap()
		case "type.googleapis.com/" + udpProxyName:
			return nil, fieldErr(fp, "udp_proxy needs a listener whose socket_address.protocol is UDP")
		default:
			return nil, fieldErr(fp, "a listener filter config is required")
		}
	}
	if len(l.GetFilterChains()) == 0 {
		return nil, fieldErr(path{"filter_chains"}, "at least one filter chain is required")
	}
	seen := map[string]int{}
	for i, fc := range l.GetFilterChains() {
		p := path{"filter_chains", "[" + strconv.Itoa(i) + "]"}
		chain, err := decodeChain(fc, p)
		if err != nil {
			return nil, err
		}
		chain.setBufferLimit(out.BufferLimit)
		if chain.TransportProtocol == TransportTLS && !out.TLSInspector {
			// Without the inspector every connection is raw_buffer, so
			// the chain could never match; Envoy no longer adds the
			// inspector on its own.
			return nil, fieldErr(append(p, "filter_chain_match", "transport_protocol"), "\"tls\" needs the tls_inspector listener filter, which this listener does not have")
		}
		for _, key := range matchKeys(chain.DestinationPort, chain.ServerNames, chain.TransportProtocol, chain.SourcePrefixes) {
			if j, dup := seen[key]; dup {
				return nil, fieldErr(append(p, "filter_chain_match"), "matches the same connections as filter_chains[%d]", j)
			}
			seen[key] = i
		}
		out.Chains = append(out.Chains, chain)
	}
	return out, nil
}

// decodeTLSInspector applies Envoy's defaults; the ranges were checked
// by the message's validation rules.
func decodeTLSInspector(ti *tlsinspectorv3.TlsInspector) TLSInspector {
	out := TLSInspector{MaxClientHello: DefaultMaxClientHello, CloseOnParseError: ti.GetCloseConnectionOnClientHelloParsingErrors()}
	if v := ti.GetMaxClientHelloSize(); v != nil {
		out.MaxClientHello = v.GetValue()
	}
	out.InitialRead = out.MaxClientHello
	if v := ti.GetInitialReadBufferSize(); v != nil && v.GetValue() < out.MaxClientHello {
		out.InitialRead = v.GetValue()
	}
	return out
}

// setBufferLimit hands the listener's per_connection_buffer_limit_bytes to
// the chain's terminal filter, which bounds its reads with it. The limit
// joins the chain's key: the same chain under another limit behaves
// differently.
func (c *FilterChain) setBufferLimit(limit uint32) {
	switch {
	case c.HCM != nil:
		c.HCM.BufferLimit = limit
	case c.TCP != nil:
		c.TCP.BufferLimit = limit
	}
	c.Key += "\x00" + strconv.FormatUint(uint64(limit), 10)
}

// matchKeys lists the match criteria a chain claims, one key per (server
// name, source prefix): two chains claiming one key would match the same
// connections, which Envoy refuses.
func matchKeys(port uint32, serverNames []string, transport string, sources []netip.Prefix) []string {
	prefix := strconv.FormatUint(uint64(port), 10) + "\x00" + transport + "\x00"
	names := serverNames
	if len(names) == 0 {
		names = []string{"\x00any"}
	}
	srcs := []string{"any"}
	if len(sources) > 0 {
		srcs = make([]string, len(sources))
		for i, s := range sources {
			srcs[i] = s.String()
		}
	}
	keys := make([]string, 0, len(names)*len(srcs))
	for _, n := range names {
		for _, s := range srcs {
			keys = append(keys, prefix+n+"\x00"+s)
		}
	}
	return keys
}

func decodeChain(fc *listenerv3.FilterChain, p path) (*FilterChain, error) {
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(fc)
	if err != nil {
		return nil, fieldErr(p, "encoding: %v", err)
	}
	sum := sha256.Sum256(raw)
	chain := &FilterChain{Name: fc.GetName(), Key: string(sum[:])}
	if dp := fc.GetFilterChainMatch().GetDestinationPort(); dp != nil {
		chain.DestinationPort = dp.GetValue()
	}
	for j, r := range fc.GetFilterChainMatch().GetSourcePrefixRanges() {
		pfx, err := cidr(r, append(p, "filter_chain_match", "source_prefix_ranges", "["+strconv.Itoa(j)+"]"))
		if err != nil {
			return nil, err
		}
		chain.SourcePrefixes = append(chain.SourcePrefixes, pfx)
	}
	switch tp := fc.GetFilterChainMatch().GetTransportProtocol(); tp {
	case "", TransportTLS, TransportRawBuffer:
		chain.TransportProtocol = tp
	default:
		return nil, fieldErr(append(p, "filter_chain_match", "transport_protocol"), "%q is not supported: the TLS inspector detects only \"tls\" and \"raw_buffer\"", tp)
	}
	for j, sn := range fc.GetFilterChainMatch().GetServerNames() {
		n := strings.ToLower(sn)
		if strings.Contains(n[min(len(n), 1):], "*") || (strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.")) || n == "" {
			return nil, fieldErr(append(p, "filter_chain_match", "server_names", "["+strconv.Itoa(j)+"]"), "%q is neither a host name nor a \"*.suffix\" wildcard", sn)
		}
		chain.ServerNames = append(chain.ServerNames, n)
	}
	if ts := fc.GetTransportSocket(); ts != nil {
		t, err := decodeDownstreamTLS(ts, append(p, "transport_socket"))
		if err != nil {
			return nil, err
		}
		chain.TLS = t
	}
	filters := fc.GetFilters()
	last := len(filters) - 1
	if last < 0 {
		return nil, fieldErr(append(p, "filters"), "a terminal network filter (http_connection_manager or tcp_proxy) is required")
	}
	switch filters[last].GetTypedConfig().GetTypeUrl() {
	case "type.googleapis.com/" + hcmName:
		if last != 0 {
			return nil, fieldErr(append(p, "filters", "[0]"), "no network filter may precede http_connection_manager (the network RBAC filter is supported before tcp_proxy only)")
		}
		fp := append(p, "filters", "[0]", "typed_config(HttpConnectionManager)")
		var hcm hcmv3.HttpConnectionManager
		if err := filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			return nil, fieldErr(fp, "decoding: %v", err)
		}
		h, err := decodeHCM(&hcm, fp)
		if err != nil {
			return nil, err
		}
		chain.HCM = h
	case "type.googleapis.com/" + tcpProxyName:
		fp := append(p, "filters", "["+strconv.Itoa(last)+"]", "typed_config(TcpProxy)")
		var tp tcpproxyv3.TcpProxy
		if err := filters[last].GetTypedConfig().UnmarshalTo(&tp); err != nil {
			return nil, fieldErr(fp, "decoding: %v", err)
		}
		t, err := decodeTCPProxy(&tp, fp)
		if err != nil {
			return nil, err
		}
		if err := decodeTCPPrefix(filters[:last], p, t); err != nil {
			return nil, err
		}
		chain.TCP = t
	default:
		return nil, fieldErr(append(p, "filters", "["+strconv.Itoa(last)+"]"), "the last network filter must be http_connection_manager or tcp_proxy")
	}
	return chain, nil
}

// decodeTCPPrefix decodes the network filters before tcp_proxy: network
// RBAC filters (static typed_config), then at most one Kafka policy
// filter (through ECDS), in that order. The RBAC verdict is taken when
// the connection is accepted, the Kafka one per request, so a Kafka
// filter before an RBAC filter would promise an order the proxy does not
// keep: it is refused.
func decodeTCPPrefix(filters []*listenerv3.Filter, p path, t *TCPProxy) error {
	for i, f := range filters {
		fp := append(p, "filters", "["+strconv.Itoa(i)+"]")
		if f.GetConfigDiscovery() != nil {
			if i != len(filters)-1 {
				return fieldErr(fp, "the Kafka policy filter must be the last filter before tcp_proxy")
			}
			// As for every discovered filter its name is the ECDS
			// resource name.
			ref, err := extensionRef(f.GetConfigDiscovery(), f.GetName(), []string{KafkaTypeURL}, append(fp, "config_discovery"))
			if err != nil {
				return err
			}
			t.Kafka = ref
			continue
		}
		if f.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/"+netRBACName {
			return fieldErr(fp, "only network RBAC filters (%s) and the Kafka policy filter (%s, with config_discovery) may precede tcp_proxy", netRBACName, kafkav1.TypeURL)
		}
		var r netrbacv3.RBAC
		if err := f.GetTypedConfig().UnmarshalTo(&r); err != nil {
			return fieldErr(append(fp, "typed_config"), "decoding: %v", err)
		}
		d, err := decodeNetworkRBAC(&r, append(fp, "typed_config(RBAC)"))
		if err != nil {
			return err
		}
		t.RBAC = append(t.RBAC, d)
	}
	return nil
}

func decodeDownstreamTLS(ts *corev3.TransportSocket, tp path) (*DownstreamTLS, error) {
	var ctx tlsv3.DownstreamTlsContext
	if ts.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/"+dtlsName {
		return nil, fieldErr(append(tp, "typed_config"), "a listener's transport socket must be a DownstreamTlsContext")
	}
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		return nil, fieldErr(append(tp, "typed_config"), "decoding: %v", err)
	}
	dp := append(tp, "typed_config(DownstreamTlsContext)")
	cp := append(dp, "common_tls_context")
	certs, alpn, v, err := decodeCommon(ctx.GetCommonTlsContext(), cp)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, fieldErr(append(cp, "tls_certificate_sds_secret_configs"), "at least one SDS certificate is required")
	}
	t := &DownstreamTLS{SecretNames: certs, ALPN: alpn, Validation: v, RequireClientCert: ctx.GetRequireClientCertificate().GetValue()}
	if t.RequireClientCert && v == nil {
		return nil, fieldErr(append(dp, "require_client_certificate"), "needs a validation context to verify the certificate with")
	}
	return t, nil
}

func decodeTCPProxy(t *tcpproxyv3.TcpProxy, p path) (*TCPProxy, error) {
	out := &TCPProxy{StatPrefix: t.GetStatPrefix(), Cluster: t.GetCluster(),
		IdleTimeout: duration(t.GetIdleTimeout(), DefaultTCPIdleTimeout), MaxConnectAttempts: 1}
	if v := t.GetMaxConnectAttempts(); v != nil {
		out.MaxConnectAttempts = v.GetValue()
	}
	if out.IdleTimeout < 0 {
		return nil, fieldErr(append(p, "idle_timeout"), "must not be negative")
	}
	if wc := t.GetWeightedClusters(); wc != nil {
		for _, c := range wc.GetClusters() {
			out.Weighted = append(out.Weighted, TCPWeightedCluster{Name: c.GetName(), Weight: c.GetWeight()})
			out.TotalWeight += uint64(c.GetWeight())
		}
		if out.TotalWeight == 0 {
			return nil, fieldErr(append(p, "weighted_clusters", "clusters"), "the weights must not all be 0")
		}
	} else if out.Cluster == "" {
		return nil, fieldErr(append(p, "cluster"), "must not be empty")
	}
	logs, err := decodeAccessLogs(t.GetAccessLog(), AccessLogTCP, p)
	if err != nil {
		return nil, err
	}
	out.AccessLogs = logs
	return out, nil
}

func decodeHCM(h *hcmv3.HttpConnectionManager, p path) (*HCM, error) {
	out := &HCM{
		StatPrefix:                h.GetStatPrefix(),
		UseRemoteAddress:          h.GetUseRemoteAddress().GetValue(),
		XFFNumTrustedHops:         h.GetXffNumTrustedHops(),
		SkipXFFAppend:             h.GetSkipXffAppend(),
		StripAnyHostPort:          h.GetStripAnyHostPort(),
		NormalizePath:             h.GetNormalizePath().GetValue(),
		MergeSlashes:              h.GetMergeSlashes(),
		ServerName:                "envoy",
		IdleTimeout:               duration(h.GetCommonHttpProtocolOptions().GetIdleTimeout(), DefaultIdleTimeout),
		StreamIdleTimeout:         duration(h.GetStreamIdleTimeout(), DefaultStreamIdleTimeout),
		RequestTimeout:            duration(h.GetRequestTimeout(), 0),
		RequestHeadersTimeout:     duration(h.GetRequestHeadersTimeout(), 0),
		GenerateRequestID:         true,
		PreserveExternalRequestID: h.GetPreserveExternalRequestId(),
		MaxRequestHeadersBytes:    DefaultMaxRequestHeadersBytes,
		MaxHeadersCount:           DefaultMaxHeadersCount,
	}
	h2, err := decodeH2Options(h.GetHttp2ProtocolOptions(), append(p, "http2_protocol_options"))
	if err != nil {
		return nil, err
	}
	out.HTTP2 = h2
	if err := decodeHCMLimits(h, p, out); err != nil {
		return nil, err
	}
	if h.GetServerName() != "" {
		out.ServerName = h.GetServerName()
	}
	if v := h.GetGenerateRequestId(); v != nil {
		out.GenerateRequestID = v.GetValue()
	}
	switch a := h.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		out.EscapedSlashes = KeepUnchanged
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		out.EscapedSlashes = RejectRequest
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		out.EscapedSlashes = UnescapeAndRedirect
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		out.EscapedSlashes = UnescapeAndForward
	default:
		return nil, fieldErr(append(p, "path_with_escaped_slashes_action"), "unknown value %d", int32(a))
	}
	switch m := h.GetForwardClientCertDetails(); m {
	case hcmv3.HttpConnectionManager_SANITIZE:
		out.ForwardClientCert = XFCCSanitize
	case hcmv3.HttpConnectionManager_FORWARD_ONLY:
		out.ForwardClientCert = XFCCForwardOnly
	case hcmv3.HttpConnectionManager_APPEND_FORWARD:
		out.ForwardClientCert = XFCCAppendForward
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		out.ForwardClientCert = XFCCSanitizeSet
	case hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
		out.ForwardClientCert = XFCCAlwaysForwardOnly
	default:
		return nil, fieldErr(append(p, "forward_client_cert_details"), "unknown value %d", int32(m))
	}
	if d := h.GetSetCurrentClientCertDetails(); d != nil {
		out.ClientCertDetails = ClientCertDetails{Subject: d.GetSubject().GetValue(), Cert: d.GetCert(), Chain: d.GetChain(),
			DNS: d.GetDns(), URI: d.GetUri()}
	}
	switch h.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		out.Codec = CodecAuto
	case hcmv3.HttpConnectionManager_HTTP1:
		out.Codec = CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		out.Codec = CodecHTTP2
	default:
		return nil, fieldErr(append(p, "codec_type"), "%s not supported by nodemesh-proxy", h.GetCodecType())
	}
	rds := h.GetRds()
	if rds == nil {
		return nil, fieldErr(append(p, "rds"), "route configuration must come from RDS")
	}
	if err := adsSource(rds.GetConfigSource(), append(p, "rds", "config_source")); err != nil {
		return nil, err
	}
	out.RouteConfigName = rds.GetRouteConfigName()
	filters := h.GetHttpFilters()
	if len(filters) == 0 || filters[len(filters)-1].GetTypedConfig().GetTypeUrl() != "type.googleapis.com/"+routerName {
		return nil, fieldErr(append(p, "http_filters"), "the router filter must be configured last")
	}
	for i, f := range filters[:len(filters)-1] {
		fp := append(p, "http_filters", "["+strconv.Itoa(i)+"]")
		hf := &HTTPFilter{Name: f.GetName(), Kind: FilterRBAC}
		switch {
		case f.GetTypedConfig().GetTypeUrl() == "type.googleapis.com/"+corsName && f.GetConfigDiscovery() == nil:
			hf.Kind = FilterCORS
		case f.GetConfigDiscovery() != nil:
			ref, err := extensionRef(f.GetConfigDiscovery(), f.GetName(), []string{RBACTypeURL, HeaderMatchTypeURL}, append(fp, "config_discovery"))
			if err != nil {
				return nil, err
			}
			hf.Discovery = ref
		case f.GetTypedConfig().GetTypeUrl() == RBACTypeURL:
			var r rbacfilterv3.RBAC
			if err := f.GetTypedConfig().UnmarshalTo(&r); err != nil {
				return nil, fieldErr(append(fp, "typed_config"), "decoding: %v", err)
			}
			d, err := decodeRBAC(&r, append(fp, "typed_config(RBAC)"))
			if err != nil {
				return nil, err
			}
			hf.RBAC = d
		default:
			return nil, fieldErr(fp, "filter %q: only the CORS filter, the RBAC filter (static or discovered) and the discovered header match filter may precede the router", f.GetName())
		}
		out.Filters = append(out.Filters, hf)
	}
	for i, m := range h.GetLocalReplyConfig().GetMappers() {
		mp := append(p, "local_reply_config", "mappers", "["+strconv.Itoa(i)+"]")
		rm := &ReplyMapper{StatusCode: int(m.GetStatusCode().GetValue())}
		switch {
		case m.GetFilter().GetResponseFlagFilter() != nil:
			rm.Flags = map[string]bool{}
			for _, f := range m.GetFilter().GetResponseFlagFilter().GetFlags() {
				rm.Flags[f] = true
			}
		case m.GetFilter().GetStatusCodeFilter() != nil:
			c := m.GetFilter().GetStatusCodeFilter().GetComparison()
			rm.StatusOp, rm.StatusValue = CompareOp(c.GetOp()), c.GetValue().GetDefaultValue()
		default:
			return nil, fieldErr(append(mp, "filter"), "a response_flag_filter or status_code_filter is required")
		}
		if b := m.GetBody(); b != nil {
			rm.HasBody = true
			if s, ok := b.GetSpecifier().(*corev3.DataSource_InlineString); ok {
				rm.Body = []byte(s.InlineString)
			} else {
				rm.Body = b.GetInlineBytes()
			}
		}
		out.LocalReply = append(out.LocalReply, rm)
	}
	logs, err := decodeAccessLogs(h.GetAccessLog(), AccessLogHTTP, p)
	if err != nil {
		return nil, err
	}
	out.AccessLogs = logs
	for i, u := range h.GetUpgradeConfigs() {
		if u.GetEnabled() != nil && !u.GetEnabled().GetValue() {
			continue
		}
		t := strings.ToLower(u.GetUpgradeType())
		if t == "connect" {
			return nil, fieldErr(append(p, "upgrade_configs", "["+strconv.Itoa(i)+"]", "upgrade_type"), "CONNECT not supported by nodemesh-proxy")
		}
		if out.Upgrades == nil {
			out.Upgrades = map[string]bool{}
		}
		out.Upgrades[t] = true
	}
	return out, nil
}

// decodeH2Options decodes the downstream http2_protocol_options, applying
// the bounded defaults of DefaultH2* to absent fields. Ranges are Envoy's.
func decodeH2Options(o *corev3.Http2ProtocolOptions, p path) (H2Options, error) {
	out := H2Options{
		MaxConcurrentStreams:        DefaultH2MaxConcurrentStreams,
		InitialStreamWindowSize:     DefaultH2InitialStreamWindowSize,
		InitialConnectionWindowSize: DefaultH2InitialConnectionWindowSize,
		StreamErrorOnInvalidMessage: o.GetOverrideStreamErrorOnInvalidHttpMessage().GetValue(),
	}
	const maxInt31 = 1<<31 - 1
	for _, f := range []struct {
		name string
		v    *wrapperspb.UInt32Value
		min  uint32
		dst  *uint32
	}{
		{"max_concurrent_streams", o.GetMaxConcurrentStreams(), 1, &out.MaxConcurrentStreams},
		{"initial_stream_window_size", o.GetInitialStreamWindowSize(), 65535, &out.InitialStreamWindowSize},
		{"initial_connection_window_size", o.GetInitialConnectionWindowSize(), 65535, &out.InitialConnectionWindowSize},
	} {
		if f.v == nil {
			continue
		}
		if v := f.v.GetValue(); v < f.min || v > maxInt31 {
			return H2Options{}, fieldErr(append(p, f.name), "%d is outside [%d, %d]", v, f.min, maxInt31)
		}
		*f.dst = f.v.GetValue()
	}
	return out, nil
}

// decodeHCMLimits checks the connection manager's limits and timeouts
// against Envoy's validation rules (the decoder does not run them on typed
// configs) and takes the limits.
func decodeHCMLimits(h *hcmv3.HttpConnectionManager, p path, out *HCM) error {
	if v := h.GetMaxRequestHeadersKb(); v != nil {
		kb := v.GetValue()
		if kb == 0 || kb > maxRequestHeadersKB {
			return fieldErr(append(p, "max_request_headers_kb"), "%d is outside 1..%d", kb, maxRequestHeadersKB)
		}
		out.MaxRequestHeadersBytes = int(kb) << 10
	}
	if v := h.GetCommonHttpProtocolOptions().GetMaxHeadersCount(); v != nil {
		n := v.GetValue()
		if n == 0 {
			return fieldErr(append(p, "common_http_protocol_options", "max_headers_count"), "must be at least 1")
		}
		out.MaxHeadersCount = int(n)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"common_http_protocol_options.idle_timeout", out.IdleTimeout},
		{"stream_idle_timeout", out.StreamIdleTimeout},
		{"request_timeout", out.RequestTimeout},
		{"request_headers_timeout", out.RequestHeadersTimeout},
	} {
		if d.v < 0 {
			return fieldErr(append(p, d.name), "must not be negative")
		}
	}
	return nil
}

// String renders a listener for logs.
func (l *Listener) String() string {
	return fmt.Sprintf("%s@%s(%d chains)", l.Name, l.Address, len(l.Chains))
}
