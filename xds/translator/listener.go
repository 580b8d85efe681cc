package translator

import (
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// listener emits one Envoy Listener per IR listener: one filter chain per
// IR chain, each with exactly one HttpConnectionManager whose routes come
// over RDS, then the RouteConfiguration of every chain it kept.
func (b *builder) listener(l *ir.Listener) error {
	h := b.hashes.Listener(l)
	if b.cfg.IngressPolicy != nil {
		// The chains carry the ingress endpoint's checks.
		h = mixHash(h, b.ingressHash)
	}
	// A TCP chain with an unresolved backend names the invalid-backend
	// cluster, which is chosen apart from the clusters of the Config.
	var invalid string
	if tcpUsesInvalid(l) {
		invalid = b.invalidBackend
	}
	defer b.enterListener(l)()
	m := b.prev.listener(l.Name, h, invalid)
	if m != nil {
		if m.out != nil {
			b.out.Listeners = append(b.out.Listeners, m.out)
			b.emit(m.out, m.version)
		}
		b.out.Warnings = append(b.out.Warnings, m.warnings...)
		for _, r := range m.refs {
			b.referenced[r] = true
		}
	} else {
		mark := len(b.out.Warnings)
		m = &listenerMemo{hash: h, invalid: invalid}
		out, err := b.buildListener(l, m)
		if err != nil {
			return err
		}
		if out != nil {
			// A function of the IR listener alone (route tables are
			// referred to by name).
			v := b.ver.start("listener").hash(h)
			if invalid != "" {
				v.str(invalid)
			}
			m.version = versionString(v.sum())
			b.emit(out, m.version)
		}
		m.out = out
		m.warnings = b.warningsSince(mark)
	}
	b.next.put(l.Name, m)
	for _, i := range m.kept {
		if err := b.routeConfiguration(l.Chains[i].Routes); err != nil {
			return err
		}
	}
	return nil
}

// buildListener builds the Listener itself, recording in m the chains it
// kept and the secrets they use. It returns nil when nothing can be served.
func (b *builder) buildListener(l *ir.Listener, m *listenerMemo) (*listenerv3.Listener, error) {
	obj := object("listener", l.Name)
	addr, _ := netip.ParseAddr(l.Address) // validated by ir.Config.Validate
	if !protoText(addr.String()) {
		b.warn(obj, "address", "address zone cannot be carried in Envoy config; listener dropped")
		return nil, nil
	}
	name := listenerName(l)
	if l.UDP != nil {
		if b.ingressEnforced() && isIngressListener(l) {
			// The UDP proxy has no filter that could check a client
			// against the ingress endpoint's policy: fail closed.
			b.warn(obj, "udp", "the ingress endpoint's policy (reserved:ingress) is enforced and UDP listeners cannot check it; listener dropped")
			return nil, nil
		}
		return b.udpListener(l, name, addr.String())
	}
	out := &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(addr.String(), l.Port),
	}
	limitListener(out)
	// Envoy rejects two filter chains with the same match, so an SNI name
	// belongs to the first chain that lists it.
	sniOwner := map[string]string{}
	tls := false
	var kept []int
	for i, ch := range l.Chains {
		field := fieldf("chains[%d]", i)
		names, keep := b.serverNames(obj, field, ch.Name, ch.ServerNames, sniOwner)
		if !keep {
			continue
		}
		fc := &listenerv3.FilterChain{Name: filterChainName(ch)}
		if len(names) > 0 {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: names}
		}
		if len(ch.SourcePrefixes) > 0 {
			// Validated canonical prefixes (ir.Config.Validate).
			m := &listenerv3.FilterChainMatch{}
			for _, s := range ch.SourcePrefixes {
				p := netip.MustParsePrefix(s)
				m.SourcePrefixRanges = append(m.SourcePrefixRanges, &corev3.CidrRange{
					AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))})
			}
			fc.FilterChainMatch = m
		}
		if ch.TLS != nil {
			ts, refs, err := b.downstreamTLS(obj, field+".tls", name, ch.TLS)
			if err != nil {
				return nil, err
			}
			fc.TransportSocket = ts
			m.refs = append(m.refs, refs...)
			tls = true
		}
		if l.PlainAndTLS {
			transportProtocol(fc, ch.TLS != nil)
		}
		hcm, err := b.httpConnectionManager(l, ch)
		if err != nil {
			return nil, err
		}
		fc.Filters = []*listenerv3.Filter{{
			Name:       filterHTTPConnectionManager,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}
		out.FilterChains = append(out.FilterChains, fc)
		kept = append(kept, i)
	}
	for i, ch := range l.TCPChains {
		names, keep := b.serverNames(obj, fieldf("tcpChains[%d]", i), ch.Name, ch.ServerNames, sniOwner)
		if !keep {
			continue
		}
		fc, err := b.tcpChain(l, ch, names)
		if err != nil {
			return nil, err
		}
		if ch.TLS != nil {
			// Terminated here; tcp_proxy relays the decrypted bytes.
			ts, refs, err := b.downstreamTLS(obj, fieldf("tcpChains[%d].tls", i), name, ch.TLS)
			if err != nil {
				return nil, err
			}
			fc.TransportSocket = ts
			m.refs = append(m.refs, refs...)
			tls = true
		}
		if len(names) > 0 {
			tls = true // the TLS inspector reads the SNI
		}
		if l.PlainAndTLS {
			transportProtocol(fc, true)
		}
		out.FilterChains = append(out.FilterChains, fc)
	}
	if l.PlainAndTLS {
		// The inspector tells TLS from plain text even when every TLS
		// chain was dropped: TLS then finds no chain and is closed
		// rather than read as HTTP.
		tls = true
	}
	if len(out.FilterChains) == 0 {
		b.warn(obj, "chains", "no chain can be served; listener dropped")
		m.refs = nil
		return nil, nil
	}
	for _, r := range m.refs {
		b.referenced[r] = true
	}
	m.kept = kept
	if tls {
		inspector, err := tlsInspector(name)
		if err != nil {
			return nil, err
		}
		out.ListenerFilters = []*listenerv3.ListenerFilter{inspector}
	}
	if l.OriginalSourceMark != 0 {
		src, err := originalSrc(name, l.OriginalSourceMark)
		if err != nil {
			return nil, err
		}
		out.ListenerFilters = append(out.ListenerFilters, src)
	}
	if err := checked("listener", name, out); err != nil {
		return nil, err
	}
	b.out.Listeners = append(b.out.Listeners, out)
	return out, nil
}

// transportProtocol makes fc match only TLS connections (isTLS) or only
// the others, as the TLS inspector detects them: on a PlainAndTLS
// listener the plaintext chain and the TLS chains share a port.
func transportProtocol(fc *listenerv3.FilterChain, isTLS bool) {
	if fc.FilterChainMatch == nil {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{}
	}
	fc.FilterChainMatch.TransportProtocol = transportRawBuffer
	if isTLS {
		fc.FilterChainMatch.TransportProtocol = transportTLS
	}
}

// serverNames returns a chain's SNI names, lower-cased (SNI compares
// case-insensitively) and without names an earlier chain already claimed.
// A chain that had names but lost all of them is dropped: serving it
// without names would make it a catch-all it never was.
func (b *builder) serverNames(obj, field, chain string, serverNames []string, owner map[string]string) ([]string, bool) {
	if len(serverNames) == 0 {
		return nil, true
	}
	names := make([]string, 0, len(serverNames))
	for i, sn := range serverNames {
		n := strings.ToLower(sn)
		if !protoText(n) {
			b.warn(obj, fieldf("%s.serverNames[%d]", field, i), "server name cannot be carried in Envoy config; ignored")
			continue
		}
		switch prev, taken := owner[n]; {
		case !taken:
			owner[n] = chain
			names = append(names, n)
		case prev != chain:
			b.warn(obj, fieldf("%s.serverNames[%d]", field, i), "server name %q already selects chain %q; ignored here", n, prev)
		}
	}
	if len(names) == 0 {
		b.warn(obj, field, "chain %q has no server name left; chain dropped", chain)
		return nil, false
	}
	return names, true
}
