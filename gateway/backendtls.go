package gateway

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// BackendTLSPolicy (Gateway API v1): how Gateways speak TLS to a Service.
// Evaluation is a function of the policies and the ConfigMaps they name,
// done once per index:
//   - a policy applies to the Service ports its targetRefs select: a
//     targetRef with sectionName selects the port of that name, one
//     without selects every port; a port selected both ways takes the
//     sectionName one. Only core Services are targets; other targets are
//     ignored (no ancestor, so no status entry);
//   - on one target (Service and sectionName) the oldest policy
//     (creationTimestamp, then namespace/name) wins; the others are
//     Accepted=False/Conflicted everywhere;
//   - CA certificates come from caCertificateRefs to ConfigMaps of the
//     policy's namespace, key ca.crt: PEM certificates only, every one
//     parsing. Another kind is ResolvedRefs=False/InvalidKind, a missing
//     ConfigMap or key, or content that is not such a bundle,
//     InvalidCACertificateRef; when no reference is usable the policy is
//     also Accepted=False/NoValidCACertificate. Decision where the spec
//     leaves it open: a policy with any invalid reference fails every
//     connection to its targets (the backend gets no cluster, so 500) even
//     when another reference is valid, rather than trusting fewer CAs than
//     the user listed — either way some of the intent is missing, and
//     failing is the safe way;
//   - wellKnownCACertificates System uses Options.SystemCAs (a PEM bundle
//     the caller reads from the host); without one, or with any other
//     value, the policy is Accepted=False/Invalid and fails its targets;
//   - hostname is sent as SNI and, without subjectAltNames, must be a DNS
//     SAN of the backend's certificate; subjectAltNames (Hostname → DNS,
//     URI → URI) replace that check, any one matching;
//   - a route whose backendRef (or mirror) names a port of a policy that
//     cannot verify backends is ResolvedRefs=False/UnsupportedProtocol
//     naming the policy and its problem (HTTPBackendRef calls such a
//     backendRef invalid without naming a reason; that one is the spec's
//     for a backend that cannot be spoken to as required), stays Accepted,
//     and that backend's share of requests gets 500;
//   - the policy applies to HTTP backends (HTTPRoute, GRPCRoute, Ingress):
//     their cluster carries ir.UpstreamTLS, and a port whose appProtocol
//     names TLS ("https", "tls") is accepted only with a policy;
//     TLSRoute and TCPRoute relay bytes and ignore it;
//   - status: one ancestor per Gateway with an accepted route using a
//     targeted Service port (at most 16, the API's limit, by
//     namespace/name), each with Accepted and ResolvedRefs.
type backendTLS struct {
	key        input.Key
	generation int64
	created    metav1.Time
	// tls is what clusters of targeted ports carry; nil when the policy
	// cannot verify backends, which then fail.
	tls *ir.UpstreamTLS
	// accepted and resolved are the policy's conditions, except for a
	// conflict, which conflicted overrides.
	accepted, resolved verdict
	conflicted         bool
}

// problem says why a policy cannot verify backends (tls is nil).
func (bt *backendTLS) problem() string {
	if !bt.accepted.ok {
		return bt.accepted.msg
	}
	return bt.resolved.msg
}

// tlsTarget is a Service and a port name ("" for every port).
type tlsTarget struct {
	svc     input.Key
	section string
}

// maxAncestors is the API's bound on status.ancestors.
const maxAncestors = 16

// indexBackendTLS evaluates every BackendTLSPolicy and picks the winner of
// each target.
func (ix *index) indexBackendTLS(in *input.Snapshot, systemCAs []byte) {
	configMaps := ix.configMaps
	ix.tlsTargets = map[tlsTarget]*backendTLS{}
	for _, p := range in.BackendTLSPolicies {
		bt := evalBackendTLS(p, configMaps, systemCAs)
		for _, tr := range p.Spec.TargetRefs {
			if tr.Group != "" || tr.Kind != "Service" {
				continue
			}
			tg := tlsTarget{svc: input.Key{Namespace: p.Namespace, Name: string(tr.Name)}}
			if tr.SectionName != nil {
				tg.section = string(*tr.SectionName)
			}
			cur := ix.tlsTargets[tg]
			switch {
			case cur == nil:
				ix.tlsTargets[tg] = bt
			case cur == bt:
			case olderPolicy(bt, cur):
				cur.conflicted = true
				ix.tlsTargets[tg] = bt
			default:
				bt.conflicted = true
			}
			ix.tlsPolicies = appendOnce(ix.tlsPolicies, bt)
			ix.tlsBySvc[tg.svc] = appendOnce(ix.tlsBySvc[tg.svc], bt)
		}
	}
}

func appendOnce(list []*backendTLS, bt *backendTLS) []*backendTLS {
	if slices.Contains(list, bt) {
		return list
	}
	return append(list, bt)
}

func olderPolicy(a, b *backendTLS) bool {
	if !a.created.Equal(&b.created) {
		return a.created.Before(&b.created)
	}
	return keyLess(a.key, b.key)
}

func evalBackendTLS(p *gwv1.BackendTLSPolicy, configMaps map[input.Key]*corev1.ConfigMap, systemCAs []byte) *backendTLS {
	bt := &backendTLS{key: keyOf(p), generation: p.Generation, created: p.CreationTimestamp}
	field := func(f string) string { return fmt.Sprintf("BackendTLSPolicy %s: spec.validation.%s", bt.key, f) }
	v := &p.Spec.Validation
	bt.accepted = yes(string(gwv1.PolicyReasonAccepted), "Policy is accepted")
	bt.resolved = yes(string(gwv1.BackendTLSPolicyReasonResolvedRefs), "All references are resolved")
	var bundle []byte
	var problems []string
	valid := 0
	for i, ref := range v.CACertificateRefs {
		f := field(fmt.Sprintf("caCertificateRefs[%d]", i))
		if ref.Group != "" || ref.Kind != "ConfigMap" {
			if bt.resolved.ok {
				bt.resolved = no(string(gwv1.BackendTLSPolicyReasonInvalidKind), "")
			}
			problems = append(problems, fmt.Sprintf("%s: kind %s is not supported; use a core ConfigMap", f, groupKind(string(ref.Group), string(ref.Kind))))
			continue
		}
		k := input.Key{Namespace: p.Namespace, Name: string(ref.Name)}
		pemBytes, err := caBundle(configMaps[k], k)
		if err != nil {
			if bt.resolved.ok {
				bt.resolved = no(string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), "")
			}
			problems = append(problems, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		valid++
		bundle = append(bundle, pemBytes...)
	}
	if len(problems) > 0 {
		bt.resolved.msg = joinProblems(problems)
		if valid == 0 {
			bt.accepted = no(string(gwv1.BackendTLSPolicyReasonNoValidCACertificate), "%s", bt.resolved.msg)
		}
	}
	if w := v.WellKnownCACertificates; w != nil && *w != "" {
		switch {
		case len(v.CACertificateRefs) > 0:
			bt.accepted = no(string(gwv1.PolicyReasonInvalid), "%s: set together with caCertificateRefs; only one may be", field("wellKnownCACertificates"))
		case *w != gwv1.WellKnownCACertificatesSystem:
			bt.accepted = no(string(gwv1.PolicyReasonInvalid), "%s: %q is not supported; use System or caCertificateRefs", field("wellKnownCACertificates"), *w)
		case len(systemCAs) == 0:
			bt.accepted = no(string(gwv1.PolicyReasonInvalid), "%s: no system CA certificates are available to this controller", field("wellKnownCACertificates"))
		default:
			bundle, valid = systemCAs, 1
		}
	} else if len(v.CACertificateRefs) == 0 {
		bt.accepted = no(string(gwv1.PolicyReasonInvalid), "%s: neither caCertificateRefs nor wellKnownCACertificates is set", field("caCertificateRefs"))
	}
	host := string(v.Hostname)
	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 || strings.Contains(host, "*") {
		bt.accepted = no(string(gwv1.PolicyReasonInvalid), "%s: %q is not a DNS name", field("hostname"), host)
	}
	t := &ir.UpstreamTLS{SNI: host, TrustedCA: bundle}
	for i, san := range v.SubjectAltNames {
		f := field(fmt.Sprintf("subjectAltNames[%d]", i))
		switch san.Type {
		case gwv1.HostnameSubjectAltNameType:
			if san.Hostname == "" {
				bt.accepted = no(string(gwv1.PolicyReasonInvalid), "%s.hostname: required for type Hostname", f)
			}
			t.SubjectAltNames = append(t.SubjectAltNames, ir.SubjectAltName{Type: ir.SANDNS, Value: string(san.Hostname)})
		case gwv1.URISubjectAltNameType:
			if san.URI == "" {
				bt.accepted = no(string(gwv1.PolicyReasonInvalid), "%s.uri: required for type URI", f)
			}
			t.SubjectAltNames = append(t.SubjectAltNames, ir.SubjectAltName{Type: ir.SANURI, Value: string(san.URI)})
		default:
			bt.accepted = no(string(gwv1.PolicyReasonInvalid), "%s.type: %q is not supported", f, san.Type)
		}
	}
	if bt.accepted.ok && bt.resolved.ok && valid > 0 {
		bt.tls = t
	}
	return bt
}

// caBundle reads the PEM CA bundle of a ConfigMap's ca.crt: certificates
// only, at least one, each parsing (what ir.UpstreamTLS requires).
func caBundle(cm *corev1.ConfigMap, k input.Key) ([]byte, error) {
	if cm == nil {
		return nil, fmt.Errorf("ConfigMap %s not found", k)
	}
	data, ok := cm.Data["ca.crt"]
	if !ok {
		if b, ok := cm.BinaryData["ca.crt"]; ok {
			data = string(b)
		} else {
			return nil, fmt.Errorf("ConfigMap %s has no key ca.crt", k)
		}
	}
	n := 0
	for rest := []byte(data); ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, fmt.Errorf("ConfigMap %s: ca.crt holds bytes that are not PEM", k)
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("ConfigMap %s: ca.crt holds a PEM block of type %q", k, blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, fmt.Errorf("ConfigMap %s: ca.crt certificate %d: %w", k, n, err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("ConfigMap %s: ca.crt holds no certificate", k)
	}
	out := []byte(data)
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	return out, nil
}

// backendTLSFor returns the policy that decides TLS to a Service port, or
// nil when none does.
func (ix *index) backendTLSFor(svc input.Key, port string) *backendTLS {
	if len(ix.tlsTargets) == 0 {
		return nil
	}
	if port != "" {
		if bt := ix.tlsTargets[tlsTarget{svc, port}]; bt != nil {
			return bt
		}
	}
	return ix.tlsTargets[tlsTarget{svc: svc}]
}

// backendTLSStatus renders every policy's status: the Gateways whose
// accepted routes use a Service the policy targets are its ancestors.
func (t *translator) backendTLSStatus() []PolicyStatus {
	if len(t.ix.tlsPolicies) == 0 {
		return nil
	}
	ancestors := map[*backendTLS]map[input.Key]bool{}
	for _, rs := range t.routes {
		if len(rs.tlsServices) == 0 {
			continue
		}
		for _, ps := range rs.parents {
			if !ps.accepted.ok {
				continue
			}
			for _, svc := range rs.tlsServices {
				for _, bt := range t.ix.tlsBySvc[svc] {
					if ancestors[bt] == nil {
						ancestors[bt] = map[input.Key]bool{}
					}
					ancestors[bt][ps.gw] = true
				}
			}
		}
	}
	out := make([]PolicyStatus, 0, len(t.ix.tlsPolicies))
	for _, bt := range t.ix.tlsPolicies {
		gws := make([]input.Key, 0, len(ancestors[bt]))
		for k := range ancestors[bt] {
			gws = append(gws, k)
		}
		slices.SortFunc(gws, func(a, b input.Key) int {
			if keyLess(a, b) {
				return -1
			}
			if a == b {
				return 0
			}
			return 1
		})
		if len(gws) > maxAncestors {
			gws = gws[:maxAncestors]
		}
		accepted := bt.accepted
		if bt.conflicted {
			accepted = no(string(gwv1.PolicyReasonConflicted), "BackendTLSPolicy %s: an older policy targets the same Service and sectionName", bt.key)
		}
		st := gwv1.PolicyStatus{Ancestors: make([]gwv1.PolicyAncestorStatus, 0, len(gws))}
		for _, gw := range gws {
			ns := gwv1.Namespace(gw.Namespace)
			st.Ancestors = append(st.Ancestors, gwv1.PolicyAncestorStatus{
				AncestorRef: gwv1.ParentReference{
					Group: ptrTo(gwv1.Group(gwv1.GroupName)), Kind: ptrTo(gwv1.Kind("Gateway")),
					Namespace: &ns, Name: gwv1.ObjectName(gw.Name),
				},
				ControllerName: t.opts.ControllerName,
				Conditions: []metav1.Condition{
					accepted.condition(string(gwv1.PolicyConditionAccepted), bt.generation),
					bt.resolved.condition(string(gwv1.BackendTLSPolicyConditionResolvedRefs), bt.generation),
				},
			})
		}
		out = append(out, PolicyStatus{Kind: "BackendTLSPolicy", Key: bt.key, Status: st})
	}
	slices.SortFunc(out, func(a, b PolicyStatus) int {
		if keyLess(a.Key, b.Key) {
			return -1
		}
		if a.Key == b.Key {
			return 0
		}
		return 1
	})
	return out
}

func ptrTo[T any](v T) *T { return &v }
