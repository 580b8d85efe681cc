package gateway

import (
	"fmt"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// Gateway spec.tls.frontend: client certificate validation on HTTPS
// listeners. Decisions:
//   - an HTTPS listener takes the perPort entry of its port, else the
//     default; a listener of another protocol ignores both (there is no
//     TLS handshake to validate in);
//   - caCertificateRefs name ConfigMaps (key ca.crt, PEM certificates
//     only) in the Gateway's namespace or, with a ReferenceGrant allowing
//     Gateways, in another. Another kind is InvalidCACertificateKind, a
//     missing or unusable ConfigMap InvalidCACertificateRef, a reference
//     not granted RefNotPermitted (ResolvedRefs=False). With none usable
//     the listener is Accepted=False/NoValidCACertificate and not served:
//     serving it without validation would let any client in. With some
//     usable, the listener validates against those only (fewer trust
//     anchors admit fewer clients, so it errs on the strict side);
//   - mode AllowValidOnly (the default) requires a client certificate
//     that verifies; AllowInsecureFallback asks for and verifies one but
//     lets clients without one, or with one that fails, in, and the
//     Gateway gets InsecureFrontendValidationMode=True/ConfigurationChanged.

// frontendValidationFor returns the validation an HTTPS listener on port
// gets, or nil.
func frontendValidationFor(gw *gwv1.Gateway, port int32) *gwv1.FrontendTLSValidation {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return nil
	}
	f := gw.Spec.TLS.Frontend
	for _, p := range f.PerPort {
		if p.Port == port {
			return p.TLS.Validation
		}
	}
	return f.Default.Validation
}

// listenerClientValidation resolves the client certificate validation of
// an HTTPS listener.
func (t *translator) listenerClientValidation(ls *listenerState) {
	gw := ls.gw.obj
	v := frontendValidationFor(gw, ls.port)
	if v == nil {
		return
	}
	field := "spec.tls.frontend.default.validation"
	for i, p := range gw.Spec.TLS.Frontend.PerPort {
		if p.Port == ls.port {
			field = fmt.Sprintf("spec.tls.frontend.perPort[%d].tls.validation", i)
			break
		}
	}
	var bundle []byte
	for i, r := range v.CACertificateRefs {
		f := fmt.Sprintf("%s.caCertificateRefs[%d]", field, i)
		if r.Group != "" || r.Kind != "ConfigMap" {
			ls.unresolved(no(string(gwv1.ListenerReasonInvalidCACertificateKind), "%s: %s %q is not supported; use a core ConfigMap", f, groupKind(string(r.Group), string(r.Kind)), r.Name))
			continue
		}
		k := input.Key{Namespace: namespaceOr(r.Namespace, gw.Namespace), Name: string(r.Name)}
		if !t.ix.permitted(ref{
			fromGroup: gwv1.GroupName, fromKind: "Gateway", fromNamespace: gw.Namespace,
			toGroup: "", toKind: "ConfigMap", toNamespace: k.Namespace, toName: k.Name,
		}) {
			ls.unresolved(no(string(gwv1.ListenerReasonRefNotPermitted), "%s: ConfigMap %s is in another namespace and no ReferenceGrant there allows Gateways from %s to use it", f, k, gw.Namespace))
			continue
		}
		pemBytes, err := caBundle(t.ix.configMaps[k], k)
		if err != nil {
			ls.unresolved(no(string(gwv1.ListenerReasonInvalidCACertificateRef), "%s: %v", f, err))
			continue
		}
		bundle = append(bundle, pemBytes...)
	}
	if bundle == nil {
		ls.reject(no(string(gwv1.ListenerReasonNoValidCACertificate), "%s: no usable CA certificate to validate client certificates with", field))
		ls.certProblem = true
		return
	}
	ls.clientCA = bundle
	ls.insecureFallback = v.Mode == gwv1.AllowInsecureFallback
}

// insecureFrontend reports whether a listener of the Gateway lets clients
// in without a valid certificate (InsecureFrontendValidationMode).
func (gs *gatewayState) insecureFrontend() bool {
	for _, ls := range gs.listeners {
		if ls.clientCA != nil && ls.insecureFallback {
			return true
		}
	}
	return false
}
