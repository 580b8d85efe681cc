package resource

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
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
	addr, err := socketAddress(l.GetAddress(), path{"address"})
	if err != nil {
		return nil, err
	}
	out := &Listener{Name: l.GetName(), Address: addr, BufferLimit: DefaultBufferLimit}
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		out.BufferLimit = v.GetValue()
	}
	for i := range l.GetListenerFilters() {
		// The allowlist admits only the TLS inspector here.
		_ = i
		out.TLSInspector = true
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
		for _, key := range matchKeys(chain.ServerNames) {
			if j, dup := seen[key]; dup {
				return nil, fieldErr(append(p, "filter_chain_match"), "matches the same connections as filter_chains[%d]", j)
			}
			seen[key] = i
		}
		out.Chains = append(out.Chains, chain)
	}
	return out, nil
}

func matchKeys(serverNames []string) []string {
	if len(serverNames) == 0 {
		return []string{"\x00any"}
	}
	return serverNames
}

func decodeChain(fc *listenerv3.FilterChain, p path) (*FilterChain, error) {
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(fc)
	if err != nil {
		return nil, fieldErr(p, "encoding: %v", err)
	}
	sum := sha256.Sum256(raw)
	chain := &FilterChain{Name: fc.GetName(), Key: string(sum[:])}
	for j, sn := range fc.GetFilterChainMatch().GetServerNames() {
		n := strings.ToLower(sn)
		if strings.Contains(n[min(len(n), 1):], "*") || (strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.")) || n == "" {
			return nil, fieldErr(append(p, "filter_chain_match", "server_names", "["+strconv.Itoa(j)+"]"), "%q is neither a host name nor a \"*.suffix\" wildcard", sn)
		}
		chain.ServerNames = append(chain.ServerNames, n)
	}
	if ts := fc.GetTransportSocket(); ts != nil {
		tp := append(p, "transport_socket")
		var ctx tlsv3.DownstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
			return nil, fieldErr(append(tp, "typed_config"), "decoding: %v", err)
		}
		cp := append(tp, "typed_config(DownstreamTlsContext)", "common_tls_context")
		common := ctx.GetCommonTlsContext()
		if len(common.GetTlsCertificateSdsSecretConfigs()) == 0 {
			return nil, fieldErr(append(cp, "tls_certificate_sds_secret_configs"), "at least one SDS certificate is required")
		}
		t := &DownstreamTLS{ALPN: common.GetAlpnProtocols()}
		for k, sds := range common.GetTlsCertificateSdsSecretConfigs() {
			sp := append(cp, "tls_certificate_sds_secret_configs", "["+strconv.Itoa(k)+"]")
			if err := adsSource(sds.GetSdsConfig(), append(sp, "sds_config")); err != nil {
				return nil, err
			}
			t.SecretNames = append(t.SecretNames, sds.GetName())
		}
		chain.TLS = t
	}
	if len(fc.GetFilters()) != 1 {
		return nil, fieldErr(append(p, "filters"), "exactly one network filter (http_connection_manager) is supported, got %d", len(fc.GetFilters()))
	}
	fp := append(p, "filters", "[0]", "typed_config(HttpConnectionManager)")
	var hcm hcmv3.HttpConnectionManager
	if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		return nil, fieldErr(fp, "decoding: %v", err)
	}
	h, err := decodeHCM(&hcm, fp)
	if err != nil {
		return nil, err
	}
	chain.HCM = h
	return chain, nil
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
		GenerateRequestID:         true,
		PreserveExternalRequestID: h.GetPreserveExternalRequestId(),
	}
	if h.GetServerName() != "" {
		out.ServerName = h.GetServerName()
	}
	if v := h.GetGenerateRequestId(); v != nil {
		out.GenerateRequestID = v.GetValue()
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
	if len(filters) == 0 {
		return nil, fieldErr(append(p, "http_filters"), "the router filter must be configured last")
	}
	// The allowlist admits only the router; it must be the last filter.
	if len(filters) > 1 {
		return nil, fieldErr(append(p, "http_filters", "[0]"), "filter %q after which the router is not last", filters[0].GetName())
	}
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

// String renders a listener for logs.
func (l *Listener) String() string {
	return fmt.Sprintf("%s@%s(%d chains)", l.Name, l.Address, len(l.Chains))
}
