package gateway

import (
	"strconv"
	"strings"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Every IR name this package produces comes from here. Names are
// hierarchical and deterministic, so golden files and xDS diffs stay stable
// and every resource traces back to the object it came from. Namespaces and
// names are DNS labels/subdomains, so '/' never appears inside a segment.

// listenerName names the IR listener of one Gateway port.
func listenerName(gw input.Key, port int32) string {
	return ir.GatewayNamePrefix + gw.Namespace + "/" + gw.Name + "/" + strconv.Itoa(int(port))
}

// plainChainName names the single plaintext chain of an HTTP port.
const plainChainName = "http"

// tlsChainName names the TLS chain of one HTTPS Gateway listener.
func tlsChainName(listener string) string { return "https/" + listener }

// passthroughChainName names the TCP chain of a TLS listener for one SNI
// hostname ("*" for the catch-all).
func passthroughChainName(listener, hostname string) string {
	return "tls/" + listener + "/" + hostname
}

// combinedUDPClusterName names the cluster combining a UDPRoute's
// backends.
func combinedUDPClusterName(route input.Key) string {
	return "udproute/" + route.Namespace + "/" + route.Name
}

// tcpChainName names the one chain of a TCP listener.
func tcpChainName(listener string) string { return "tcp/" + listener }

// plainTableName names the route table shared by the HTTP listeners of a
// Gateway port.
func plainTableName(gw input.Key, port int32) string {
	return listenerName(gw, port) + "/" + plainChainName
}

// tlsTableName names the route table of one HTTPS Gateway listener.
func tlsTableName(gw input.Key, port int32, listener string) string {
	return listenerName(gw, port) + "/" + tlsChainName(listener)
}

// virtualHostName names the virtual host of one domain in a route table.
func virtualHostName(table, domain string) string { return table + "/" + domain }

// routeName names the IR route of one match of one rule of a route of
// kind k ("httproute/<ns>/<name>/rule/<i>/match/<j>" for an HTTPRoute).
func routeName(k *routeKind, route input.Key, rule, match int) string {
	return k.namePrefix + "/" + route.Namespace + "/" + route.Name + "/rule/" + strconv.Itoa(rule) + "/match/" + strconv.Itoa(match)
}

// nameRoutes makes room for the IR routes of every rule of rules, rules
// of rs, that has none yet (routeOf), and names them as routeName does,
// the names of all of them back to back in one string: given all of a
// route's rules, one allocation per route rather than one per rule or
// match, since rules come by the thousand.
func nameRoutes(rs *routeState, rules []*ruleState) {
	k, key := rs.kind, rs.key
	base := len(k.namePrefix) + len(key.Namespace) + len(key.Name) + len("///rule//match/")
	size := 0
	for _, r := range rules {
		if len(r.routes) == 0 {
			n := len(r.matches)
			size += n*(base+decimalLen(r.index)) + decimalDigits(n)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for _, r := range rules {
		if len(r.routes) != 0 {
			continue
		}
		ruleNo := strconv.Itoa(r.index)
		for j := range len(r.matches) {
			b.WriteString(k.namePrefix)
			b.WriteByte('/')
			b.WriteString(key.Namespace)
			b.WriteByte('/')
			b.WriteString(key.Name)
			b.WriteString("/rule/")
			b.WriteString(ruleNo)
			b.WriteString("/match/")
			b.WriteString(strconv.Itoa(j))
		}
	}
	names := b.String()
	for _, r := range rules {
		if len(r.routes) != 0 {
			continue
		}
		n := len(r.matches)
		if cap(r.routes) >= n {
			r.routes = r.routes[:n] // room newRuleState made
		} else {
			r.routes = make([]ir.Route, n)
		}
		for j := range r.routes {
			l := base + decimalLen(r.index) + decimalLen(j)
			r.routes[j].Name, names = names[:l], names[l:]
		}
	}
}

// decimalDigits is the number of decimal digits of 0, 1, …, n-1 together.
func decimalDigits(n int) int {
	digits := 0
	for lo, hi, width := 0, 10, 1; lo < n; lo, hi, width = hi, hi*10, width+1 {
		digits += (min(n, hi) - lo) * width
	}
	return digits
}

// decimalLen is the number of decimal digits of j (j >= 0).
func decimalLen(j int) int {
	width := 1
	for ; j >= 10; j /= 10 {
		width++
	}
	return width
}

// clusterName names the IR cluster of one Service port.
func clusterName(svc input.Key, port int32) string {
	return ir.ServiceNamePrefix + svc.Namespace + "/" + svc.Name + "/" + strconv.Itoa(int(port))
}

// tcpClusterName names the TCP cluster of one Service port, apart from
// its HTTP cluster: the same port may serve both kinds of routes.
func tcpClusterName(svc input.Key, port int32) string { return clusterName(svc, port) + "/tcp" }

// h2cClusterName names the h2c cluster of a Service port that says
// nothing about its protocol, used by the GRPCRoutes attached to it
// (impliedH2CCluster), apart from its HTTP/1.1 cluster.
func h2cClusterName(svc input.Key, port int32) string { return clusterName(svc, port) + "/h2c" }

// secretName names the IR secret of one Kubernetes Secret.
func secretName(s input.Key) string { return ir.SecretNamePrefix + s.Namespace + "/" + s.Name }

// meshListenerName names the listener of one Service port with routes.
func meshListenerName(svc input.Key, port int32) string {
	return ir.MeshNamePrefix + svc.Namespace + "/" + svc.Name + "/" + strconv.Itoa(int(port))
}

// meshProducerChainName names the chain every client not told apart
// takes; meshConsumerChainName the chain of one namespace's clients.
const meshProducerChainName = "producer"

func meshConsumerChainName(ns string) string { return "consumer/" + ns }
