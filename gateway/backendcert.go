package gateway

import (
	"fmt"
	"slices"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Gateway spec.tls.backend.clientCertificateRef: the certificate a
// Gateway presents to backends it speaks TLS to (those a BackendTLSPolicy
// targets). Decisions:
//   - the reference must be a core Secret of type kubernetes.io/tls
//     holding a usable key pair, in the Gateway's namespace or allowed by
//     a ReferenceGrant; otherwise the Gateway stays Accepted with
//     ResolvedRefs=False (InvalidClientCertificateRef, or RefNotPermitted)
//     and presents no certificate (a backend requiring one then refuses
//     the connection, which fails closed);
//   - a Gateway with spec.tls gets a ResolvedRefs condition; one without
//     keeps the two conditions it always had;
//   - clusters are shared between Gateways, so a Gateway with a client
//     certificate gets its own copy of each TLS cluster its routes use,
//     named <cluster>/client/<secret namespace>/<secret name> (Gateways
//     presenting the same Secret share it), and its routes point there.
//     Plaintext clusters are shared as before.

// resolveBackendCert checks a Gateway's backend client certificate.
func (t *translator) resolveBackendCert(gs *gatewayState) {
	gw := gs.obj
	if gw.Spec.TLS == nil {
		return
	}
	gs.resolved = ptr(yes(string(gwv1.GatewayReasonResolvedRefs), "All references are resolved"))
	if gw.Spec.TLS.Backend == nil || gw.Spec.TLS.Backend.ClientCertificateRef == nil {
		return
	}
	cr := gw.Spec.TLS.Backend.ClientCertificateRef
	const field = "spec.tls.backend.clientCertificateRef"
	group, kind := groupOr(cr.Group, ""), kindOr(cr.Kind, "Secret")
	if group != "" || kind != "Secret" {
		gs.resolved = ptr(no(string(gwv1.GatewayReasonInvalidClientCertificateRef), "%s: %s %q is not supported; use a core Secret", field, groupKind(group, kind), cr.Name))
		return
	}
	k := input.Key{Namespace: namespaceOr(cr.Namespace, gw.Namespace), Name: string(cr.Name)}
	if !t.ix.permitted(ref{
		fromGroup: gwv1.GroupName, fromKind: "Gateway", fromNamespace: gw.Namespace,
		toGroup: "", toKind: "Secret", toNamespace: k.Namespace, toName: k.Name,
	}) {
		gs.resolved = ptr(no(string(gwv1.GatewayReasonRefNotPermitted), "%s: Secret %s is in another namespace and no ReferenceGrant there allows Gateways from %s to use it", field, k, gw.Namespace))
		return
	}
	if _, err := t.ix.tlsSecret(k); err != nil {
		gs.resolved = ptr(no(string(gwv1.GatewayReasonInvalidClientCertificateRef), "%s: %v", field, err))
		return
	}
	gs.backendCert = &k
}

// clientClusterKey names a TLS cluster presenting one client certificate.
type clientClusterKey struct {
	cl   *ir.Cluster
	cert input.Key
}

// clientCluster returns the copy of a TLS cluster that presents the
// client certificate of Secret cert, made once per translation while the
// objects routes read are unchanged (like the clusters themselves).
func (t *translator) clientCluster(cl *ir.Cluster, cert input.Key) *ir.Cluster {
	k := clientClusterKey{cl, cert}
	if out := t.clientClusters[k]; out != nil {
		return out
	}
	tls := *cl.UpstreamTLS
	tls.ClientCertificate = secretName(cert)
	out := *cl
	out.Name = fmt.Sprintf("%s/client/%s/%s", cl.Name, cert.Namespace, cert.Name)
	out.UpstreamTLS = &tls
	if t.clientClusters == nil {
		t.clientClusters = map[clientClusterKey]*ir.Cluster{}
	}
	t.clientClusters[k] = &out
	return &out
}

// usesTLS reports whether a rule forwards to a TLS cluster.
func usesTLS(rule *ruleState) bool {
	return slices.ContainsFunc(rule.clusters, func(cl *ir.Cluster) bool { return cl.UpstreamTLS != nil })
}

// withClientCert returns the IR route of a match for a Gateway presenting
// the client certificate of Secret cert: a copy whose TLS backends and
// mirrors are the clusters presenting it, made once per match and
// certificate.
func (b *builder) withClientCert(m *matchState, r *ir.Route, cert input.Key) *ir.Route {
	if out := m.byCert[cert]; out != nil {
		return out
	}
	cp := *r
	cp.Backends = make([]*ir.WeightedBackend, len(r.Backends))
	for i, wb := range r.Backends {
		cp.Backends[i] = wb
		if wb.Cluster == "" {
			continue
		}
		for _, cl := range m.rule.clusters {
			if cl.Name == wb.Cluster && cl.UpstreamTLS != nil {
				w := *wb
				w.Cluster = b.t.clientCluster(cl, cert).Name
				cp.Backends[i] = &w
				break
			}
		}
	}
	if len(r.Mirrors) > 0 {
		cp.Mirrors = make([]*ir.Mirror, len(r.Mirrors))
		for i, mr := range r.Mirrors {
			cp.Mirrors[i] = mr
			for _, cl := range m.rule.clusters {
				if cl.Name == mr.Cluster && cl.UpstreamTLS != nil {
					w := *mr
					w.Cluster = b.t.clientCluster(cl, cert).Name
					cp.Mirrors[i] = &w
					break
				}
			}
		}
	}
	if m.byCert == nil {
		m.byCert = map[input.Key]*ir.Route{}
	}
	m.byCert[cert] = &cp
	return &cp
}

// ruleClusters lists the clusters a rule's routes use on a Gateway
// presenting cert (nil: none).
func (b *builder) ruleClusters(rule *ruleState, cert *input.Key) []*ir.Cluster {
	if cert == nil || !usesTLS(rule) {
		return rule.clusters
	}
	out := make([]*ir.Cluster, len(rule.clusters))
	for i, cl := range rule.clusters {
		out[i] = cl
		if cl.UpstreamTLS != nil {
			out[i] = b.t.clientCluster(cl, *cert)
		}
	}
	return out
}
