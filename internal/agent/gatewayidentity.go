package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// gatewayFromNode says which Gateway and Ingress connections the
// datapath refuses on this node, or "" when none can be. They carry the
// reserved ingress identity in their mark (GatewayUpstreamMark) and,
// where the Node has no ingress address of the backend's family, leave
// from the node's own address. A proxy whose policy listeners read the
// datapath's identities (Config.ProxyIdentity: nodemesh-proxy) judges
// them as ingress, and nothing is refused. One that judges peers by
// address only (Envoy) would take such a connection for the host, so
// to_workload refuses it wherever the destination's policy would redirect
// it there (DropRouteIdentity): on the ports where a local endpoint's
// ingress rows redirect the ingress identity (or every peer) to the
// proxy. Without a datapath nothing is refused.
func (a *Agent) gatewayFromNode(res *policy.Result, ingressAddrs []netip.Addr) string {
	if a.cfg.GatewayUpstreamMark == 0 || a.cfg.Datapath == nil || a.cfg.ProxyIdentity || res == nil {
		return ""
	}
	var v4, v6 bool
	for _, ip := range ingressAddrs {
		v4, v6 = v4 || ip.Is4(), v6 || ip.Is6()
	}
	var missing []string
	if !v4 {
		missing = append(missing, "IPv4")
	}
	if !v6 {
		missing = append(missing, "IPv6")
	}
	if len(missing) == 0 {
		return ""
	}
	var ports []int
	for _, e := range res.Datapath.Entries {
		if e.Direction == model.Ingress && e.Verdict == model.Redirect &&
			(e.Remote == model.IdentityIngress || e.Remote == model.IdentityAny) && !slices.Contains(ports, int(e.Port)) {
			ports = append(ports, int(e.Port))
		}
	}
	if len(ports) == 0 {
		return ""
	}
	slices.Sort(ports)
	names := make([]string, len(ports))
	for i, p := range ports {
		names[i] = strconv.Itoa(p)
	}
	return fmt.Sprintf("this node has no %s ingress address (Node annotation %s): Gateway and Ingress connections to its "+
		"backends of that family leave from the node's address, and the proxy's policy listener, which judges peers by "+
		"address only (--proxy-datapath-identity=false), would take them for the host; the datapath refuses them (route-identity-not-addressed) wherever a "+
		"backend's ingress policy has L7 rules for them, here on ports %s",
		strings.Join(missing, "/"), model.IngressIPAnnotation, strings.Join(names, ", "))
}
