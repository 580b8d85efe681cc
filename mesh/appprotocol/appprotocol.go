// Package appprotocol reads what a Service port says about the protocol
// its backends speak: its appProtocol, or without one its name by the
// "<protocol>[-<suffix>]" convention Istio popularised (Kubernetes leaves
// both free-form). The Gateway API translation (gateway) and the proxy
// load balancing of annotated Services (mesh/envoyconfig) decide from
// here whether the proxy speaks HTTP/2 cleartext (h2c) to a port, so a
// port is spoken to the same way whoever routes to it.
//
// Decisions:
//   - h2c: appProtocol kubernetes.io/h2c (the Kubernetes standard value),
//     or grpc, h2c, http2 (Istio's values, case-insensitive); without an
//     appProtocol, the name grpc, h2c or http2 alone or before "-".
//     gRPC needs HTTP/2, and without TLS there is no ALPN to negotiate it,
//     so a port saying gRPC takes HTTP/2 with prior knowledge.
//   - grpc-web (name or appProtocol) is not h2c: gRPC-Web exists to
//     cross HTTP/1.1, and Istio reads the name as its own protocol.
//   - an appProtocol wins over the name, whatever it says: "http" on a
//     port named grpc means HTTP/1.1.
//   - Declared tells a port that says nothing (no appProtocol, a name
//     that names no protocol: "", "web", "api-v2") from one that does;
//     only the former may take its protocol from how it is used (a
//     GRPCRoute attached to it, gateway/doc.go "GAMMA").
package appprotocol

import "strings"

// KubernetesH2C is the standard appProtocol of HTTP/2 over cleartext.
const KubernetesH2C = "kubernetes.io/h2c"

// nameProtocols are the protocol names a port name may start with
// (before "-"): Istio's list, plus h2c.
var nameProtocols = map[string]bool{
	"grpc": true, "grpc-web": true, "h2c": true, "http": true, "http2": true, "https": true,
	"mongo": true, "mysql": true, "redis": true, "tcp": true, "tls": true, "udp": true,
}

// h2cNames are the protocol names (appProtocol or port name) that mean
// HTTP/2 cleartext.
var h2cNames = map[string]bool{"grpc": true, "h2c": true, "http2": true}

// nameProtocol is the protocol a port name names, lower-cased, or "".
// grpc-web is looked for first: it holds the separator.
func nameProtocol(name string) string {
	n := strings.ToLower(name)
	if n == "grpc-web" || strings.HasPrefix(n, "grpc-web-") {
		return "grpc-web"
	}
	p, _, _ := strings.Cut(n, "-")
	if nameProtocols[p] {
		return p
	}
	return ""
}

// H2C reports whether a port with this appProtocol (nil: none) and name
// says its backends take HTTP/2 cleartext.
func H2C(appProtocol *string, name string) bool {
	if appProtocol != nil {
		return *appProtocol == KubernetesH2C || h2cNames[strings.ToLower(*appProtocol)]
	}
	return h2cNames[nameProtocol(name)]
}

// Declared reports whether a port says anything about its protocol: an
// appProtocol, or a name that names a protocol.
func Declared(appProtocol *string, name string) bool {
	return appProtocol != nil || nameProtocol(name) != ""
}
