package translator

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nodemesh/nodemesh/mesh/ir"
	headermatchv1 "github.com/nodemesh/nodemesh/proxylib/api/headermatch/v1"
	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

// Every Envoy resource name and every cross-reference between resources is
// derived here, so a reference can never disagree with the name it points
// at. IR names are already hierarchical and unique per kind; they pass
// through unchanged unless they contain bytes an Envoy name cannot carry.

// Names of the upstream Envoy extensions the translator emits. They are the
// only extensions the output may use (extensions_test.go pins the set).
const (
	filterHTTPConnectionManager = "envoy.filters.network.http_connection_manager"
	filterRouter                = "envoy.filters.http.router"
	filterCORS                  = "envoy.filters.http.cors"
	filterRBAC                  = "envoy.filters.http.rbac"
	filterTLSInspector          = "envoy.filters.listener.tls_inspector"
	transportSocketTLS          = "envoy.transport_sockets.tls"
	httpProtocolOptionsKey      = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

	// Transport protocols the TLS inspector detects, as
	// filter_chain_match.transport_protocol names them.
	transportTLS       = "tls"
	transportRawBuffer = "raw_buffer"

	// L7 policy (policy*.go): upstream extensions, plus the project's own
	// Kafka filter, which only the builtin proxy implements.
	filterOriginalDst = "envoy.filters.listener.original_dst"
	filterOriginalSrc = "envoy.filters.listener.original_src"
	filterTCPProxy    = "envoy.filters.network.tcp_proxy"
	filterNetworkRBAC = "envoy.filters.network.rbac"
	filterUDPProxy    = "envoy.filters.udp_listener.udp_proxy"
	// udpRouteAction names the UDP proxy's matcher action after its type
	// (Envoy finds the action by type; the name is for humans).
	udpRouteAction   = "envoy.extensions.filters.udp.udp_proxy.v3.Route"
	accessLoggerHTTP = "envoy.access_loggers.http_grpc"
	accessLoggerTCP  = "envoy.access_loggers.tcp_grpc"
	rbacTypeURL      = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	kafkaTypeURL     = kafkav1.TypeURL
	// headerMatchTypeURL: the project's header match filter, for Cilium's
	// headerMatches mismatch actions (builtin proxy only).
	headerMatchTypeURL = headermatchv1.TypeURL
)

// Names of the L7 policy resources. Listeners and their route tables are
// named after the IR policy listener ("policy/ingress/http"); every policy
// listener forwards to one ORIGINAL_DST cluster; access logs go to the
// agent through one cluster. A filter configured through ECDS is named
// after its TypedExtensionConfig, as Envoy requires.
const (
	originalDstCluster = ir.PolicyNamePrefix + "original-dst"
	accessLogCluster   = "nodemesh-als"
)

func policyListenerName(l *ir.PolicyListener) string { return envoyName(l.Name) }

// rbacExtensionName names the RBAC configuration of a direction,
// "policy/<direction>/http/rbac".
func rbacExtensionName(d ir.PolicyDirection) string {
	return ir.PolicyListenerName(d, ir.L7HTTP) + "/rbac"
}

// destinationRBACName names the ingress rules the egress listener also
// applies to local destinations (see rbacConfig).
const destinationRBACName = ir.PolicyNamePrefix + "egress/http/destination-rbac"

// headerMatchExtensionName names the header match configuration of a
// direction, "policy/<direction>/http/header-match".
func headerMatchExtensionName(d ir.PolicyDirection) string {
	return ir.PolicyListenerName(d, ir.L7HTTP) + "/header-match"
}

// kafkaExtensionName names the Kafka policy of a direction,
// "policy/<direction>/kafka".
func kafkaExtensionName(d ir.PolicyDirection) string {
	return ir.PolicyListenerName(d, ir.L7Kafka)
}

// upgradeWebSocket is the upgrade type every HttpConnectionManager
// enables (extensions_test.go pins the set).
const upgradeWebSocket = "websocket"

// invalidBackendCluster is the cluster name a weighted entry points at when
// its backend could not be resolved. No cluster of that name is ever
// emitted, so the proxy answers with the route's
// cluster_not_found_response_code.
const invalidBackendCluster = "nodemesh.invalid-backend"

// envoyName turns an IR name into an Envoy resource name. Proto strings must
// be UTF-8 and Envoy rejects NUL, CR and LF in many names, so any byte that
// is not part of a printable UTF-8 rune, and '%' itself, is written as %XX.
// Escaping '%' keeps the mapping injective; names produced from Kubernetes
// objects never contain any of these bytes, so they pass through unchanged.
func envoyName(s string) string {
	if nameIsClean(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || r < 0x20 || r == 0x7f || r == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
			i++
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// nameIsClean reports whether envoyName would return s unchanged (a false
// negative only costs the slow path).
func nameIsClean(s string) bool {
	// Names are ASCII nearly always (every route has one): bytes first,
	// runes only from the first byte that is not ASCII.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return runesAreClean(s[i:])
		}
		if c < 0x20 || c == 0x7f || c == '%' {
			return false
		}
	}
	return true
}

// runesAreClean is nameIsClean rune by rune.
func runesAreClean(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || r == '%' {
			return false
		}
	}
	return true
}

// listenerName names the Envoy Listener of an IR listener.
func listenerName(l *ir.Listener) string { return envoyName(l.Name) }

// filterChainName names the filter chain of an IR chain; unique within its
// listener because IR chain names are.
func filterChainName(ch *ir.HTTPChain) string { return envoyName(ch.Name) }

// statPrefix is the HttpConnectionManager stat prefix of a chain. Stats
// names use '.' as a separator, so everything but [A-Za-z0-9_-] becomes '_'.
func statPrefix(l *ir.Listener, ch *ir.HTTPChain) string {
	return statSafe(l.Name) + "." + statSafe(ch.Name)
}

func statSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// routeConfigName names the RouteConfiguration of an IR route table; the
// chain's HttpConnectionManager refers to it over RDS.
func routeConfigName(rt *ir.RouteTable) string { return envoyName(rt.Name) }

// virtualHostName names a virtual host; unique within its route table.
func virtualHostName(vh *ir.VirtualHost) string { return envoyName(vh.Name) }

// routeName names a route; unique within its virtual host.
func routeName(r *ir.Route) string { return envoyName(r.Name) }

// clusterName names the Cluster of an IR cluster. Routes refer to it by
// this name, and it is also the cluster's EDS service name and the
// cluster_name of its ClusterLoadAssignment.
func clusterName(name string) string { return envoyName(name) }

// viaIngressSuffix ends the Envoy name of the variant of a cluster that
// the routes of Gateway and Ingress listeners use while the ingress
// endpoint's egress (ingress → backend) is enforced:
// "<cluster>/via-ingress", the same cluster with only the endpoints that
// egress admits ("~<n>" is added should another emitted name hold it;
// ingresspolicy.go).
const viaIngressSuffix = "/via-ingress"

// secretName names the SDS Secret of an IR secret; TLS contexts refer to it.
func secretName(name string) string { return envoyName(name) }

// invalidBackendName returns the never-defined cluster name for unresolved
// backends, made distinct from every emitted cluster name.
func invalidBackendName(emitted map[string]bool) string {
	name := invalidBackendCluster
	for i := 1; emitted[name]; i++ {
		name = invalidBackendCluster + "~" + strconv.Itoa(i)
	}
	return name
}

// OriginKind is the kind of object a resource was made for.
type OriginKind string

// Kinds of origin. A resource of no kind the translator knows has origin
// kind "".
const (
	OriginGateway OriginKind = "Gateway" // a Gateway's listeners and route configurations
	OriginPolicy  OriginKind = "Policy"  // L7 policy listeners, their filter configurations and clusters
	OriginService OriginKind = "Service" // clusters and their endpoints
	OriginSecret  OriginKind = "Secret"  // TLS certificates
	// An Ingress's listeners and route configurations. Those of the
	// shared listener set (ingress.cilium.io/loadbalancer-mode: shared)
	// belong to every shared Ingress at once: their origin has no
	// namespace and no name.
	OriginIngress OriginKind = "Ingress"
	// Resources of a CiliumEnvoyConfig and of a
	// CiliumClusterwideEnvoyConfig (which has no namespace).
	OriginEnvoyConfig            OriginKind = "CiliumEnvoyConfig"
	OriginClusterwideEnvoyConfig OriginKind = "CiliumClusterwideEnvoyConfig"
)

// Origin is the object a resource name was made for: a Gateway, Service
// or Secret by namespace and name; for L7 policy, which compiles every
// policy of a direction into one listener, the policy resource's name
// below "policy/" ("ingress/http/rbac").
type Origin struct {
	Kind      OriginKind
	Namespace string
	Name      string
}

// OriginOf reads back the object an Envoy resource name of this
// translator was made for, from the hierarchical IR names (mesh/ir
// names.go): the inverse of the naming above, so a proxy's rejection of a
// resource can be reported on the object it came from. Names from
// Kubernetes objects are never escaped by envoyName, so they parse as
// made; anything else has the zero Origin.
func OriginOf(name string) Origin {
	if name == accessLogCluster {
		return Origin{Kind: OriginPolicy, Name: name}
	}
	if rest, ok := strings.CutPrefix(name, ir.PolicyNamePrefix); ok && rest != "" {
		return Origin{Kind: OriginPolicy, Name: rest}
	}
	if rest, ok := strings.CutPrefix(name, ir.IngressNamePrefix); ok {
		return ingressOrigin(rest)
	}
	if rest, ok := strings.CutPrefix(name, ir.ClusterwideEnvoyConfigNamePrefix); ok {
		obj, _, _ := strings.Cut(rest, "/")
		if obj == "" {
			return Origin{}
		}
		return Origin{Kind: OriginClusterwideEnvoyConfig, Name: obj}
	}
	for _, p := range []struct {
		prefix string
		kind   OriginKind
	}{{ir.GatewayNamePrefix, OriginGateway}, {ir.ServiceNamePrefix, OriginService}, {ir.SecretNamePrefix, OriginSecret},
		{ir.ServiceLBNamePrefix, OriginService}, {ir.MeshNamePrefix, OriginService},
		{ir.EnvoyConfigNamePrefix, OriginEnvoyConfig}} {
		rest, ok := strings.CutPrefix(name, p.prefix)
		if !ok {
			continue
		}
		ns, rest, _ := strings.Cut(rest, "/")
		obj, _, _ := strings.Cut(rest, "/")
		if ns == "" || obj == "" {
			return Origin{}
		}
		return Origin{Kind: p.kind, Namespace: ns, Name: obj}
	}
	return Origin{}
}

// ingressOrigin reads an Ingress resource name below "ingress/" (mesh/ir
// names.go). A dedicated Ingress's names are "<namespace>/<name>/" then a
// port (its listeners and route configurations), "rule" or
// "default-backend" (its routes); the shared set's are "shared/<port>",
// then nothing or a filter chain's protocol. The third segment tells them
// apart even for an Ingress named like a port in a namespace "shared".
func ingressOrigin(rest string) Origin {
	segs := strings.Split(rest, "/")
	if len(segs) >= 3 && segs[0] != "" && segs[1] != "" && (isPort(segs[2]) || segs[2] == "rule" || segs[2] == "default-backend") {
		return Origin{Kind: OriginIngress, Namespace: segs[0], Name: segs[1]}
	}
	if len(segs) >= 2 && segs[0] == "shared" && isPort(segs[1]) {
		return Origin{Kind: OriginIngress}
	}
	return Origin{}
}

// isPort reports whether s is a port number as names carry it: decimal,
// 1 to 65535, no sign or leading zero.
func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n <= 65535 && strconv.Itoa(n) == s
}
