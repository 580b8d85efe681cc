package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// gatewayAPIModule is the Gateway API release whose examples must all
// translate; it is the version go.mod requires.
const gatewayAPIModule = "sigs.k8s.io/gateway-api"

// refusedExamples lists the example units `nodemesh translate` refuses,
// with the reason. A refusal here is explicit: the whole unit is rejected
// with an error naming the kind, nothing of it is served. Every entry must
// still be refused (a stale entry fails the test), so the list shrinks as
// kinds land.
var refusedExamples = map[string]string{}

// degradedExamples lists the example manifests that translate but get
// unhealthy conditions for a feature not implemented here, with the
// reason. The condition names the field and the rest of the object is
// served without it only where the spec allows that (a backendRef of an
// unsupported kind gets no traffic; a listener with an unsupported field
// is not programmed at all). A stale entry fails the test.
var degradedExamples = map[string]string{
	"standard/gateway-addresses.yaml":               "Hostname addresses are not supported, only IPAddress: the Gateway is not accepted",
	"standard/multicluster/httproute-hybrid.yaml":   "ServiceImport backends (multicluster) are not supported: ResolvedRefs=False InvalidKind, that backend gets no traffic",
	"standard/multicluster/httproute-location.yaml": "ServiceImport backends (multicluster) are not supported: ResolvedRefs=False InvalidKind",
	"standard/multicluster/httproute-method.yaml":   "ServiceImport backends (multicluster) are not supported: ResolvedRefs=False InvalidKind",
	"standard/multicluster/httproute-simple.yaml":   "ServiceImport backends (multicluster) are not supported: ResolvedRefs=False InvalidKind",
}

// TestTranslateGatewayAPIExamples runs every manifest in the examples
// directory of the Gateway API module this project builds against through
// `nodemesh translate`. Each manifest is a unit, translated with the
// sibling files of its directory that hold what it names (the Gateway and
// Namespaces a route's directory ships) without redefining its objects:
// files that are alternatives of each other define the same objects and
// are never mixed. The examples are not self-contained — no GatewayClass,
// and Services, Secrets and some parent Gateways are left to the reader —
// so the test supplies each missing referent: a GatewayClass of this
// controller, a Service with the named port, a Secret with a fresh
// self-signed key pair, a Gateway with a listener of the route's kind.
// Then every unit must translate into Envoy resources and its status
// printout must carry healthy conditions for every Gateway, listener and
// route parent in it.
func TestTranslateGatewayAPIExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Gateway API module in the module cache")
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", gatewayAPIModule).Output()
	if err != nil {
		t.Fatalf("locating %s: %v", gatewayAPIModule, err)
	}
	root := filepath.Join(strings.TrimSpace(string(out)), "examples")
	units := exampleUnits(t, root)
	if len(units) != 88 {
		t.Fatalf("found %d example manifests under %s, want the 88 of v1.6.3", len(units), root)
	}
	seen := map[string]bool{}
	for _, u := range units {
		t.Run(u.name, func(t *testing.T) {
			referents := referentsFile(t, u.files)
			args := []string{"-f", referents}
			for _, f := range u.files {
				args = append(args, "-f", f)
			}
			reason, refused := refusedExamples[u.name]
			var out, errs bytes.Buffer
			err := translateCmd(append(args, "-type", "all"), &out, &errs)
			if refused {
				seen[u.name] = true
				if err == nil {
					t.Fatalf("translated, but listed as refused (%s): drop it from refusedExamples", reason)
				}
				t.Logf("refused as expected (%s): %v", reason, err)
				return
			}
			if err != nil {
				t.Fatalf("translate: %v\n%s", err, errs.String())
			}
			out.Reset()
			errs.Reset()
			if err := translateCmd(append(args, "-type", "status", "-o", "json"), &out, &errs); err != nil {
				t.Fatalf("translate -type status: %v\n%s", err, errs.String())
			}
			t.Logf("status:\n%s", out.String())
			if errs.Len() > 0 {
				t.Logf("translate reported problems:\n%s", errs.String())
			}
			checkExampleStatus(t, u.name, append([]string{referents}, u.files...), out.Bytes())
		})
	}
	for name := range refusedExamples {
		if !seen[name] {
			t.Errorf("refusedExamples lists %s, which is not an example manifest", name)
		}
	}
}

type exampleUnit struct {
	name  string   // the manifest's path under examples/
	files []string // the manifest first, then its sibling context
}

func exampleUnits(t *testing.T, root string) []exampleUnit {
	t.Helper()
	dirs := map[string][]string{}
	var all []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml", ".json":
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
			all = append(all, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	sort.Strings(all)
	var units []exampleUnit
	for _, f := range all {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		rel = filepath.ToSlash(rel)
		u := exampleUnit{name: rel, files: []string{f}}
		if d := filepath.Dir(rel); d != "standard" && d != "experimental" {
			keys := objectKeys(t, []string{f})
			sibs := dirs[filepath.Dir(f)]
			sort.Strings(sibs)
			for _, s := range sibs {
				sk := objectKeys(t, []string{s})
				if s == f || overlaps(keys, sk) || !providesContext(t, s) {
					continue
				}
				for k := range sk {
					keys[k] = true
				}
				u.files = append(u.files, s)
			}
		}
		units = append(units, u)
	}
	return units
}

// providesContext: a sibling is context when it holds what routes name
// (Gateways, Namespaces, ReferenceGrants) rather than alternative routes.
func providesContext(t *testing.T, file string) bool {
	for _, o := range decodeFiles(t, []string{file}) {
		switch o.Kind {
		case input.KindGateway, input.KindNamespace, input.KindReferenceGrant:
		default:
			return false
		}
	}
	return true
}

func objectKeys(t *testing.T, files []string) map[string]bool {
	keys := map[string]bool{}
	for _, o := range decodeFiles(t, files) {
		keys[string(o.Kind)+" "+o.Key.String()] = true
	}
	return keys
}

func overlaps(a, b map[string]bool) bool {
	for k := range a {
		if b[k] {
			return true
		}
	}
	return false
}

// referentsFile writes what the unit names but does not ship.
func referentsFile(t *testing.T, files []string) string {
	t.Helper()
	objs := decodeFiles(t, files)
	have := objectKeys(t, files)
	var b strings.Builder
	add := func(kind string, k input.Key, format string, args ...any) {
		id := kind + " " + k.String()
		if have[id] {
			return
		}
		have[id] = true
		fmt.Fprintf(&b, format, args...)
	}
	addClass := func(c string) {
		add("GatewayClass", input.Key{Name: c}, "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: %s\nspec:\n  controllerName: %s\n", c, gateway.ControllerName)
	}
	// caConfigMap supplies a ConfigMap holding a CA certificate (ca.crt)
	// for a reference that names one.
	caConfigMap := func(k input.Key) {
		crt, _ := exampleKeyPair(t)
		ca, err := base64.StdEncoding.DecodeString(crt)
		if err != nil {
			t.Fatal(err)
		}
		add("ConfigMap", k, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n  ca.crt: %q\n", k.Name, k.Namespace, ca)
	}
	secret := func(k input.Key) {
		crt, key := exampleKeyPair(t)
		add("Secret", k, "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\ntype: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n", k.Name, k.Namespace, crt, key)
	}
	for _, o := range objs {
		p, ok := o.Obj.(*gwv1.BackendTLSPolicy)
		if !ok {
			continue
		}
		for _, r := range p.Spec.Validation.CACertificateRefs {
			if r.Kind == "ConfigMap" && r.Group == "" {
				caConfigMap(input.Key{Namespace: p.Namespace, Name: string(r.Name)})
			}
		}
	}
	for _, o := range objs {
		g, ok := o.Obj.(*gwv1.Gateway)
		if !ok {
			continue
		}
		addClass(string(g.Spec.GatewayClassName))
		if tls := g.Spec.TLS; tls != nil {
			if b := tls.Backend; b != nil && b.ClientCertificateRef != nil {
				r := b.ClientCertificateRef
				if (r.Kind == nil || *r.Kind == "Secret") && (r.Group == nil || *r.Group == "") {
					k := input.Key{Namespace: g.Namespace, Name: string(r.Name)}
					if r.Namespace != nil {
						k.Namespace = string(*r.Namespace)
					}
					secret(k)
				}
			}
			if f := tls.Frontend; f != nil {
				cfgs := []gwv1.TLSConfig{f.Default}
				for _, pp := range f.PerPort {
					cfgs = append(cfgs, pp.TLS)
				}
				for _, c := range cfgs {
					if c.Validation == nil {
						continue
					}
					for _, r := range c.Validation.CACertificateRefs {
						if r.Kind != "ConfigMap" || r.Group != "" {
							continue
						}
						k := input.Key{Namespace: g.Namespace, Name: string(r.Name)}
						if r.Namespace != nil {
							k.Namespace = string(*r.Namespace)
						}
						caConfigMap(k)
					}
				}
			}
		}
		for _, l := range g.Spec.Listeners {
			listenerSecrets(g.Namespace, l.TLS, secret)
		}
	}
	for _, o := range objs {
		if ls, ok := o.Obj.(*gwv1.ListenerSet); ok {
			for _, l := range ls.Spec.Listeners {
				listenerSecrets(ls.Namespace, l.TLS, secret)
			}
		}
	}
	for _, o := range objs {
		for _, r := range routeRefs(o) {
			if r.service != nil {
				k := *r.service
				add("Service", k, "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  ports:\n  - port: %d\n    protocol: %s\n%s", k.Name, k.Namespace, r.port, r.l4, appProto(r.appProtocol))
			}
			if r.gateway != nil {
				k := *r.gateway
				if !have["Gateway "+k.String()] {
					addClass("example")
				}
				add("Gateway", k, "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  gatewayClassName: example\n  listeners:\n  - name: %s\n    protocol: %s\n    port: %d\n    allowedRoutes:\n      namespaces:\n        from: All\n", k.Name, k.Namespace, r.section, r.protocol, r.port)
			}
		}
	}
	p := filepath.Join(t.TempDir(), "referents.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// listenerSecrets supplies the Secrets a listener's certificateRefs name,
// in the namespace of the object defining the listener unless the ref
// says otherwise.
func listenerSecrets(ns string, tls *gwv1.ListenerTLSConfig, secret func(input.Key)) {
	if tls == nil {
		return
	}
	for _, r := range tls.CertificateRefs {
		if (r.Kind != nil && *r.Kind != "Secret") || (r.Group != nil && *r.Group != "") {
			continue
		}
		k := input.Key{Namespace: ns, Name: string(r.Name)}
		if r.Namespace != nil {
			k.Namespace = string(*r.Namespace)
		}
		secret(k)
	}
}

// exampleRef is one thing a route names: a backend Service, or a parent
// Gateway with the listener it would need.
type exampleRef struct {
	service, gateway  *input.Key
	port              int32
	l4                string // Service port protocol
	appProtocol       string // Service port appProtocol
	section, protocol string // listener name and protocol for a parent
}

func routeRefs(o input.Object) []exampleRef {
	var (
		parents  []gwv1.ParentReference
		backends []gwv1.BackendObjectReference
		protocol = "HTTP"
		l4       = "TCP"
		// appProtocol: a gRPC backend speaks h2c, and GRPCRoutes need that declared.
		appProtocol string
	)
	switch v := o.Obj.(type) {
	case *gwv1.HTTPRoute:
		parents = v.Spec.ParentRefs
		for _, r := range v.Spec.Rules {
			for _, b := range r.BackendRefs {
				backends = append(backends, b.BackendObjectReference)
			}
			for _, f := range r.Filters {
				if f.RequestMirror != nil {
					backends = append(backends, f.RequestMirror.BackendRef)
				}
			}
		}
	case *gwv1.GRPCRoute:
		parents, appProtocol = v.Spec.ParentRefs, "kubernetes.io/h2c"
		for _, r := range v.Spec.Rules {
			for _, b := range r.BackendRefs {
				backends = append(backends, b.BackendObjectReference)
			}
		}
	case *gwv1.TLSRoute:
		parents, protocol = v.Spec.ParentRefs, "TLS"
		for _, r := range v.Spec.Rules {
			for _, b := range r.BackendRefs {
				backends = append(backends, b.BackendObjectReference)
			}
		}
	case *gwv1.TCPRoute:
		parents, protocol = v.Spec.ParentRefs, "TCP"
		for _, r := range v.Spec.Rules {
			for _, b := range r.BackendRefs {
				backends = append(backends, b.BackendObjectReference)
			}
		}
	case *gwv1.UDPRoute:
		parents, protocol, l4 = v.Spec.ParentRefs, "UDP", "UDP"
		for _, r := range v.Spec.Rules {
			for _, b := range r.BackendRefs {
				backends = append(backends, b.BackendObjectReference)
			}
		}
	default:
		return nil
	}
	ns := func(p *gwv1.Namespace) string {
		if p != nil {
			return string(*p)
		}
		return o.Key.Namespace
	}
	var refs []exampleRef
	for _, b := range backends {
		if (b.Kind != nil && *b.Kind != "Service") || (b.Group != nil && *b.Group != "") || b.Port == nil {
			continue
		}
		refs = append(refs, exampleRef{service: &input.Key{Namespace: ns(b.Namespace), Name: string(b.Name)}, port: int32(*b.Port), l4: l4, appProtocol: appProtocol})
	}
	for _, p := range parents {
		if (p.Kind != nil && *p.Kind != "Gateway") || (p.Group != nil && *p.Group != gwv1.GroupName) {
			continue
		}
		r := exampleRef{gateway: &input.Key{Namespace: ns(p.Namespace), Name: string(p.Name)}, section: "example", protocol: protocol, port: 80}
		if p.SectionName != nil {
			r.section = string(*p.SectionName)
		}
		if p.Port != nil {
			r.port = int32(*p.Port)
		}
		if protocol == "TLS" {
			// Passthrough: the default mode, Terminate, needs a certificate.
			r.protocol = "TLS\n    tls:\n      mode: Passthrough"
		}
		refs = append(refs, r)
	}
	return refs
}

var exampleCert struct {
	once     sync.Once
	crt, key string
	err      error
}

// exampleKeyPair returns a self-signed certificate and key (base64 of
// PEM), made once per test binary.
func exampleKeyPair(t *testing.T) (crt, key string) {
	t.Helper()
	exampleCert.once.Do(func() {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			exampleCert.err = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "example.com"},
			DNSNames:     []string{"example.com", "*.example.com"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			exampleCert.err = err
			return
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			exampleCert.err = err
			return
		}
		exampleCert.crt = base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		exampleCert.key = base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	})
	if exampleCert.err != nil {
		t.Fatalf("making a key pair: %v", exampleCert.err)
	}
	return exampleCert.crt, exampleCert.key
}

func decodeFiles(t *testing.T, files []string) []input.Object {
	t.Helper()
	var objs []input.Object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := input.Decode(f, data)
		if err != nil {
			continue // the translate run reports it
		}
		objs = append(objs, o...)
	}
	return objs
}

// checkExampleStatus: every Gateway of this controller and every route
// with such a Gateway as a parent has printed status; nothing else does
// (a Gateway of another controller's class, a route whose parents are a
// mesh or a ServiceImport, a route without parentRefs are not ours to
// report on). Unless the unit is listed in degradedExamples, all printed
// conditions are healthy.
func checkExampleStatus(t *testing.T, name string, files []string, printed []byte) {
	t.Helper()
	var st struct {
		Gateways     []gateway.GatewayStatus     `json:"gateways"`
		ListenerSets []gateway.ListenerSetStatus `json:"listenerSets"`
		Routes       []gateway.RouteStatus       `json:"routes"`
	}
	if err := json.Unmarshal(printed, &st); err != nil {
		t.Fatalf("decoding the status printout: %v", err)
	}
	gws := map[input.Key]gwv1.GatewayStatus{}
	for _, g := range st.Gateways {
		gws[g.Key] = g.Status
	}
	sets := map[input.Key]gwv1.ListenerSetStatus{}
	for _, l := range st.ListenerSets {
		sets[l.Key] = l.Status
	}
	routes := map[string]gwv1.RouteStatus{}
	for _, r := range st.Routes {
		routes[string(r.Kind)+" "+r.Key.String()] = r.Status
	}
	objs := decodeFiles(t, files)
	ours := map[string]bool{}
	for _, o := range objs {
		if c, ok := o.Obj.(*gwv1.GatewayClass); ok {
			ours[c.Name] = c.Spec.ControllerName == gateway.ControllerName
		}
	}
	ourGateways := map[input.Key]bool{}
	for _, o := range objs {
		if g, ok := o.Obj.(*gwv1.Gateway); ok && ours[string(g.Spec.GatewayClassName)] {
			ourGateways[o.Key] = true
		}
	}
	_, degraded := degradedExamples[name]
	var unhealthy int
	check := func(what string, conds []metav1.Condition, types ...string) {
		t.Helper()
		for _, typ := range types {
			if findCond(conds, typ) == nil {
				t.Errorf("%s: no %s condition printed", what, typ)
			}
		}
		for _, c := range conds {
			healthy := c.Status == metav1.ConditionTrue
			if c.Type == "Conflicted" {
				healthy = c.Status == metav1.ConditionFalse
			}
			if healthy {
				continue
			}
			unhealthy++
			if !degraded {
				t.Errorf("%s: %s=%s (%s): %s", what, c.Type, c.Status, c.Reason, c.Message)
			}
		}
	}
	for _, o := range objs {
		if o.Kind == input.KindGateway {
			s, printed := gws[o.Key]
			if printed != ourGateways[o.Key] {
				t.Errorf("Gateway %s: status printed = %v, want %v (owned by this controller)", o.Key, printed, ourGateways[o.Key])
			}
			if !printed {
				continue
			}
			check("Gateway "+o.Key.String(), s.Conditions, "Accepted", "Programmed")
			if len(s.Listeners) == 0 {
				t.Errorf("Gateway %s: no listener status printed", o.Key)
			}
			for _, l := range s.Listeners {
				check(fmt.Sprintf("Gateway %s listener %s", o.Key, l.Name), l.Conditions, "Accepted", "Programmed", "ResolvedRefs")
			}
			continue
		}
		if ls, ok := o.Obj.(*gwv1.ListenerSet); ok {
			parent := input.Key{Namespace: ls.Namespace, Name: string(ls.Spec.ParentRef.Name)}
			if p := ls.Spec.ParentRef.Namespace; p != nil {
				parent.Namespace = string(*p)
			}
			s, printed := sets[o.Key]
			if printed != ourGateways[parent] {
				t.Errorf("ListenerSet %s: status printed = %v, want %v (its parent Gateway %s is this controller's)", o.Key, printed, ourGateways[parent], parent)
			}
			if !printed {
				continue
			}
			check("ListenerSet "+o.Key.String(), s.Conditions, "Accepted", "Programmed")
			if len(s.Listeners) != len(ls.Spec.Listeners) {
				t.Errorf("ListenerSet %s: status for %d listeners printed, want %d", o.Key, len(s.Listeners), len(ls.Spec.Listeners))
			}
			for _, l := range s.Listeners {
				check(fmt.Sprintf("ListenerSet %s listener %s", o.Key, l.Name), l.Conditions, "Accepted", "Programmed", "ResolvedRefs")
			}
			continue
		}
		var want int
		for _, r := range routeRefs(o) {
			if r.gateway != nil && ourGateways[*r.gateway] {
				want++
			}
		}
		if routeRefs(o) == nil {
			continue // not a route
		}
		id := string(o.Kind) + " " + o.Key.String()
		s := routes[id]
		if len(s.Parents) != want {
			t.Errorf("%s: status for %d parents printed, want %d (its parentRefs to this controller's Gateways)", id, len(s.Parents), want)
		}
		for _, p := range s.Parents {
			check(fmt.Sprintf("%s parent %s", id, p.ParentRef.Name), p.Conditions, "Accepted", "ResolvedRefs")
		}
	}
	if degraded && unhealthy == 0 {
		t.Errorf("listed in degradedExamples (%s), but every condition is healthy: drop it from the list", degradedExamples[name])
	}
}

func findCond(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func appProto(p string) string {
	if p == "" {
		return ""
	}
	return "    appProtocol: " + p + "\n"
}
