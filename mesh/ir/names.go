package ir

// IR names are hierarchical and begin with the kind of object they were
// made for, so every resource, and every rejection of one, traces back to
// its object (xds/translator.OriginOf reads them back). The producers of
// IR (gateway/naming.go, PolicyListenerName) build names from these
// prefixes and nothing else.
const (
	// GatewayNamePrefix begins the names of a Gateway's listeners, route
	// tables and virtual hosts: "gateway/<namespace>/<name>/<port>/...".
	GatewayNamePrefix = "gateway/"
	// IngressNamePrefix begins the names of Ingress listeners and of
	// Ingress paths' routes: "ingress/shared/<port>/..." for the shared
	// listener set, "ingress/<namespace>/<name>/<port>/..." for a
	// dedicated Ingress, "ingress/<namespace>/<name>/rule/..." for routes.
	IngressNamePrefix = "ingress/"
	// ServiceNamePrefix begins cluster names:
	// "service/<namespace>/<name>/<port>".
	ServiceNamePrefix = "service/"
	// SecretNamePrefix begins secret names: "secret/<namespace>/<name>".
	SecretNamePrefix = "secret/"
	// PolicyNamePrefix begins the names of L7 policy listeners and of
	// everything they use: "policy/<direction>/<protocol>/...".
	PolicyNamePrefix = "policy/"
	// EnvoyConfigNamePrefix and ClusterwideEnvoyConfigNamePrefix begin
	// the names of the resources of a CiliumEnvoyConfig,
	// "cec/<namespace>/<name>/<resource>", and of a
	// CiliumClusterwideEnvoyConfig, "ccec/<name>/<resource>".
	EnvoyConfigNamePrefix = "cec/"
	// ServiceLBNamePrefix begins the names of the listener, route table
	// and cluster that balance a Service's requests in the proxy (the
	// service.cilium.io/lb-l7 annotation): "lb-l7/<namespace>/<name>/<port>".
	ServiceLBNamePrefix = "lb-l7/"
	// MeshNamePrefix begins the names of the listener of a Service port
	// that GAMMA routes (Gateway API routes with a Service parent) steer,
	// and of what only it uses: "mesh/<namespace>/<name>/<port>/...".
	MeshNamePrefix                   = "mesh/"
	ClusterwideEnvoyConfigNamePrefix = "ccec/"
)
