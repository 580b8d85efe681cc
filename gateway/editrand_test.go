package gateway

import (
	"fmt"
	"math/rand"
	"net/netip"
	"reflect"
	goruntime "runtime"
	"slices"
	"testing"
	"weak"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// editWorld builds the random-edit test's snapshot: a Gateway with
// listeners of every kind routes attach to, a second Gateway, Services in
// two namespaces (one reachable only through a ReferenceGrant), a Service
// with a cluster IP for GAMMA routes, and a certificate.
type editWorld struct {
	rng  *rand.Rand
	cert *corev1.Secret
	n    int
}

var editNamespaces = []string{"default", "team-b"}

func (w *editWorld) snapshot() *input.Snapshot {
	all := &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}}
	s := &input.Snapshot{
		GatewayClasses: []*gwv1.GatewayClass{{
			ObjectMeta: metav1.ObjectMeta{Name: "nodemesh"},
			Spec:       gwv1.GatewayClassSpec{ControllerName: ControllerName},
		}},
		Gateways: []*gwv1.Gateway{{
			ObjectMeta: metav1.ObjectMeta{Name: "eg", Namespace: "default"},
			Spec: gwv1.GatewaySpec{GatewayClassName: "nodemesh", Listeners: []gwv1.Listener{
				{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType, AllowedRoutes: all},
				{Name: "exact", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: ptr(gwv1.Hostname("a.example.com")), AllowedRoutes: all},
				{Name: "wild", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: ptr(gwv1.Hostname("*.wild.example.com")), AllowedRoutes: all},
				{Name: "alt", Port: 8080, Protocol: gwv1.HTTPProtocolType, AllowedRoutes: all},
				{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType, Hostname: ptr(gwv1.Hostname("*.example.com")), AllowedRoutes: all,
					TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "example-cert"}}}},
				{Name: "pass", Port: 8443, Protocol: gwv1.TLSProtocolType, Hostname: ptr(gwv1.Hostname("*.tls.example.com")), AllowedRoutes: all,
					TLS: &gwv1.ListenerTLSConfig{Mode: ptr(gwv1.TLSModePassthrough)}},
				{Name: "tcp", Port: 9000, Protocol: gwv1.TCPProtocolType, AllowedRoutes: all},
			}},
		}, {
			ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default"},
			Spec: gwv1.GatewaySpec{GatewayClassName: "nodemesh", Listeners: []gwv1.Listener{
				{Name: "http", Port: 81, Protocol: gwv1.HTTPProtocolType, AllowedRoutes: all},
				{Name: "tcp", Port: 9001, Protocol: gwv1.TCPProtocolType, AllowedRoutes: all},
			}},
		}},
		Secrets: []*corev1.Secret{w.cert},
	}
	for _, ns := range append(slices.Clone(editNamespaces), "team-a") {
		s.Namespaces = append(s.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	for _, svc := range []input.Key{{Namespace: "default", Name: "web"}, {Namespace: "team-a", Name: "api"}, {Namespace: "default", Name: "mesh"}} {
		s.Services = append(s.Services, w.service(svc, 80))
		s.EndpointSlices = append(s.EndpointSlices, w.slice(svc))
	}
	s.ReferenceGrants = []*gwv1.ReferenceGrant{w.grant()}
	for i := 0; i < 6; i++ {
		s.HTTPRoutes = append(s.HTTPRoutes, w.httpRoute())
	}
	for i := 0; i < 3; i++ {
		s.GRPCRoutes = append(s.GRPCRoutes, w.grpcRoute())
		s.TLSRoutes = append(s.TLSRoutes, w.tlsRoute())
		s.TCPRoutes = append(s.TCPRoutes, w.tcpRoute())
	}
	return s
}

func (w *editWorld) service(k input.Key, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: k.Name, Namespace: k.Namespace},
		Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.0.%d", 10+len(k.Name)),
			Ports: []corev1.ServicePort{{Name: "http", Port: port, Protocol: corev1.ProtocolTCP, AppProtocol: w.appProtocol()}}},
	}
}

// appProtocol is h2c (gRPC backends need it) or unsaid.
func (w *editWorld) appProtocol() *string {
	if w.rng.Intn(3) == 0 {
		return nil
	}
	return ptr("kubernetes.io/h2c")
}

func (w *editWorld) slice(svc input.Key) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc.Name + "-x", Namespace: svc.Namespace, Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8000 + w.rng.Intn(2)))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.1.0.%d", 1+w.rng.Intn(3))}}},
	}
}

func (w *editWorld) grant() *gwv1.ReferenceGrant {
	var from []gwv1.ReferenceGrantFrom
	for _, kind := range []gwv1.Kind{"HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute"} {
		from = append(from, gwv1.ReferenceGrantFrom{Group: gwv1.GroupName, Kind: kind, Namespace: gwv1.Namespace(editNamespaces[w.rng.Intn(2)])})
	}
	return &gwv1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Name: "routes", Namespace: "team-a"},
		Spec:       gwv1.ReferenceGrantSpec{From: from, To: []gwv1.ReferenceGrantTo{{Kind: "Service"}}},
	}
}

// meta names a new route; names repeat across kinds.
func (w *editWorld) meta() metav1.ObjectMeta {
	w.n++
	return metav1.ObjectMeta{Name: fmt.Sprintf("r%d", w.n), Namespace: editNamespaces[w.rng.Intn(2)], Generation: int64(w.n),
		CreationTimestamp: metav1.Unix(int64(1000+w.rng.Intn(4)), 0)}
}

// parentRefs picks one or two parents: the Gateway, one of its listeners
// by section or port (some of which do not exist), the other Gateway, a
// missing one, or (with mesh) the GAMMA Service.
func (w *editWorld) parentRefs(mesh bool) []gwv1.ParentReference {
	var out []gwv1.ParentReference
	for range 1 + w.rng.Intn(2) {
		pr := gwv1.ParentReference{Name: "eg"}
		switch w.rng.Intn(9) {
		case 0, 1:
		case 2, 3:
			sections := []gwv1.SectionName{"http", "exact", "wild", "alt", "https", "pass", "tcp", "nope"}
			pr.SectionName = ptr(sections[w.rng.Intn(len(sections))])
		case 4:
			ports := []gwv1.PortNumber{80, 8080, 443, 8443, 9000, 1234}
			pr.Port = ptr(ports[w.rng.Intn(len(ports))])
		case 5:
			pr.Name = "other"
		case 6:
			pr.Name = "missing"
		case 7:
			pr.Namespace = ptr(gwv1.Namespace("default"))
		default:
			if mesh {
				pr = gwv1.ParentReference{Group: ptr(gwv1.Group("")), Kind: ptr(gwv1.Kind("Service")), Name: "mesh", Namespace: ptr(gwv1.Namespace("default")), Port: ptr(gwv1.PortNumber(80))}
			}
		}
		out = append(out, pr)
	}
	return out
}

func (w *editWorld) hostnames() []gwv1.Hostname {
	pool := []gwv1.Hostname{"a.example.com", "b.example.com", "x.wild.example.com", "*.example.com", "s.tls.example.com", "*.tls.example.com", "c.other.test"}
	var out []gwv1.Hostname
	for range w.rng.Intn(3) {
		out = append(out, pool[w.rng.Intn(len(pool))])
	}
	return out
}

func (w *editWorld) backendRef() gwv1.BackendObjectReference {
	switch w.rng.Intn(4) {
	case 0:
		return gwv1.BackendObjectReference{Name: "api", Namespace: ptr(gwv1.Namespace("team-a")), Port: ptr(gwv1.PortNumber(80))}
	case 1:
		return gwv1.BackendObjectReference{Name: "missing", Port: ptr(gwv1.PortNumber(80))}
	default:
		return gwv1.BackendObjectReference{Name: "web", Namespace: ptr(gwv1.Namespace("default")), Port: ptr(gwv1.PortNumber(80))}
	}
}

func (w *editWorld) httpRoute() *gwv1.HTTPRoute {
	r := &gwv1.HTTPRoute{ObjectMeta: w.meta(), Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: w.parentRefs(true)}, Hostnames: w.hostnames()}}
	for range 1 + w.rng.Intn(2) {
		r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{
			Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Value: ptr(fmt.Sprintf("/p%d", w.rng.Intn(4)))}}},
			BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: w.backendRef()}}},
		})
	}
	return r
}

func (w *editWorld) grpcRoute() *gwv1.GRPCRoute {
	r := &gwv1.GRPCRoute{ObjectMeta: w.meta(), Spec: gwv1.GRPCRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: w.parentRefs(true)}, Hostnames: w.hostnames()}}
	r.Spec.Rules = []gwv1.GRPCRouteRule{{
		Matches:     []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Service: ptr(fmt.Sprintf("pkg.S%d", w.rng.Intn(3)))}}},
		BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: w.backendRef()}}},
	}}
	return r
}

func (w *editWorld) tlsRoute() *gwv1.TLSRoute {
	r := &gwv1.TLSRoute{ObjectMeta: w.meta(), Spec: gwv1.TLSRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: w.parentRefs(false)}, Hostnames: w.hostnames()}}
	r.Spec.Rules = []gwv1.TLSRouteRule{{BackendRefs: []gwv1.BackendRef{{BackendObjectReference: w.backendRef()}}}}
	return r
}

func (w *editWorld) tcpRoute() *gwv1.TCPRoute {
	r := &gwv1.TCPRoute{ObjectMeta: w.meta(), Spec: gwv1.TCPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: w.parentRefs(false)}}}
	r.Spec.Rules = []gwv1.TCPRouteRule{{BackendRefs: []gwv1.BackendRef{{BackendObjectReference: w.backendRef()}}}}
	return r
}

// editList applies one random edit to a list of routes: one replaced by
// an edited copy, one added, one removed, two swapped, or all copied
// (same content, new objects).
func editList[T interface {
	runtime.Object
	metav1.Object
}](w *editWorld, list []T, fresh func() T, edit func(T) T) ([]T, string) {
	list = slices.Clone(list)
	switch op := w.rng.Intn(6); {
	case op == 0 || len(list) == 0:
		r := fresh()
		i := w.rng.Intn(len(list) + 1)
		return slices.Insert(list, i, r), "added"
	case op == 1:
		i := w.rng.Intn(len(list))
		return slices.Delete(list, i, i+1), "removed"
	case op == 2:
		i, j := w.rng.Intn(len(list)), w.rng.Intn(len(list))
		list[i], list[j] = list[j], list[i]
		return list, "swapped"
	case op == 3 && w.rng.Intn(4) == 0:
		for i, r := range list {
			list[i] = r.DeepCopyObject().(T)
		}
		return list, "copied"
	default:
		i := w.rng.Intn(len(list))
		list[i] = edit(list[i])
		return list, "edited"
	}
}

// editSpec takes the parts of a fresh route into a copy of r: its
// parentRefs, its hostnames or its rules.
func editSpec[T any](w *editWorld, r *T, fresh *T, common func(*T) *gwv1.CommonRouteSpec, hostnames func(*T) *[]gwv1.Hostname, rules func(*T, *T)) *T {
	switch w.rng.Intn(3) {
	case 0:
		common(r).ParentRefs = common(fresh).ParentRefs
	case 1:
		if hostnames != nil {
			*hostnames(r) = *hostnames(fresh)
			break
		}
		fallthrough
	default:
		rules(r, fresh)
	}
	return r
}

// entriesOf identifies the attachment maps of the Translator's listeners:
// a translation that took them over (takeAttachments) keeps the maps.
func entriesOf(x *Translator) map[uintptr]bool {
	out := map[uintptr]bool{}
	if x.prev == nil {
		return out
	}
	for _, gs := range x.prev.gatewayStates {
		for _, ls := range gs.listeners {
			if ls.entries != nil {
				out[reflect.ValueOf(ls.entries).Pointer()] = true
			}
		}
	}
	return out
}

// TestTranslatorRandomEditsAllKinds applies random edits to routes of
// every kind (parentRefs by section, port, to another or a missing
// Gateway or to a Service; hostnames; rules; backends across namespaces;
// added, removed, reordered, copied), to the Services, EndpointSlices and
// the ReferenceGrant, now and then to a listener, and re-lists every
// object now and then (new objects, same content): every result equals
// a fresh translation, and most route edits take the incremental path.
func TestTranslatorRandomEditsAllKinds(t *testing.T) {
	cert := loadCase(t, "testdata/gateway/https-sni.in.yaml").Secrets[0]
	opts := Options{Mesh: testMesh, Addresses: map[input.Key]netip.Addr{
		{Namespace: "default", Name: "eg"}:    netip.MustParseAddr("127.0.0.10"),
		{Namespace: "default", Name: "other"}: netip.MustParseAddr("127.0.0.11"),
	}}
	seeds, steps := 8, 250
	if testing.Short() {
		seeds, steps = 2, 100
	}
	for seed := range seeds {
		w := &editWorld{rng: rand.New(rand.NewSource(int64(seed))), cert: cert}
		base := w.snapshot()
		snap := base
		x := NewTranslator()
		checkSame(t, fmt.Sprintf("seed %d start", seed), x, snap, opts)
		delta, routeEdits := 0, 0
		for step := range steps {
			next := *snap
			var what string
			routeEdit := true
			switch k := w.rng.Intn(12); {
			case k < 3:
				next.HTTPRoutes, what = editList(w, next.HTTPRoutes, w.httpRoute, func(r *gwv1.HTTPRoute) *gwv1.HTTPRoute {
					return editSpec(w, r.DeepCopy(), w.httpRoute(), func(r *gwv1.HTTPRoute) *gwv1.CommonRouteSpec { return &r.Spec.CommonRouteSpec },
						func(r *gwv1.HTTPRoute) *[]gwv1.Hostname { return &r.Spec.Hostnames }, func(r, f *gwv1.HTTPRoute) { r.Spec.Rules = f.Spec.Rules })
				})
				what = "HTTPRoute " + what
			case k < 5:
				next.GRPCRoutes, what = editList(w, next.GRPCRoutes, w.grpcRoute, func(r *gwv1.GRPCRoute) *gwv1.GRPCRoute {
					return editSpec(w, r.DeepCopy(), w.grpcRoute(), func(r *gwv1.GRPCRoute) *gwv1.CommonRouteSpec { return &r.Spec.CommonRouteSpec },
						func(r *gwv1.GRPCRoute) *[]gwv1.Hostname { return &r.Spec.Hostnames }, func(r, f *gwv1.GRPCRoute) { r.Spec.Rules = f.Spec.Rules })
				})
				what = "GRPCRoute " + what
			case k < 7:
				next.TLSRoutes, what = editList(w, next.TLSRoutes, w.tlsRoute, func(r *gwv1.TLSRoute) *gwv1.TLSRoute {
					return editSpec(w, r.DeepCopy(), w.tlsRoute(), func(r *gwv1.TLSRoute) *gwv1.CommonRouteSpec { return &r.Spec.CommonRouteSpec },
						func(r *gwv1.TLSRoute) *[]gwv1.Hostname { return &r.Spec.Hostnames }, func(r, f *gwv1.TLSRoute) { r.Spec.Rules = f.Spec.Rules })
				})
				what = "TLSRoute " + what
			case k < 9:
				next.TCPRoutes, what = editList(w, next.TCPRoutes, w.tcpRoute, func(r *gwv1.TCPRoute) *gwv1.TCPRoute {
					return editSpec(w, r.DeepCopy(), w.tcpRoute(), func(r *gwv1.TCPRoute) *gwv1.CommonRouteSpec { return &r.Spec.CommonRouteSpec },
						nil, func(r, f *gwv1.TCPRoute) { r.Spec.Rules = f.Spec.Rules })
				})
				what = "TCPRoute " + what
			case k == 9:
				routeEdit = false
				i := w.rng.Intn(len(next.Services))
				next.Services = slices.Clone(next.Services)
				next.EndpointSlices = slices.Clone(next.EndpointSlices)
				if w.rng.Intn(2) == 0 {
					next.Services[i] = w.service(keyOf(next.Services[i]), int32(80+w.rng.Intn(2)))
					what = "Service replaced"
				} else {
					next.EndpointSlices[i] = w.slice(input.Key{Namespace: next.Services[i].Namespace, Name: next.Services[i].Name})
					what = "EndpointSlice replaced"
				}
			case k == 10 && w.rng.Intn(3) == 0:
				routeEdit = false
				next = *relist(snap)
				what = "re-listed"
			case k == 10:
				routeEdit = false
				if len(next.ReferenceGrants) > 0 && w.rng.Intn(2) == 0 {
					next.ReferenceGrants = nil
					what = "grant removed"
				} else {
					next.ReferenceGrants = []*gwv1.ReferenceGrant{w.grant()}
					what = "grant replaced"
				}
			default:
				routeEdit = false
				if w.rng.Intn(3) != 0 {
					// Most steps of this kind change nothing but a route.
					next.HTTPRoutes, what = editList(w, next.HTTPRoutes, w.httpRoute, func(r *gwv1.HTTPRoute) *gwv1.HTTPRoute { return r })
					routeEdit = true
					what = "HTTPRoute (kept) " + what
					break
				}
				i := w.rng.Intn(len(next.Gateways))
				gw := next.Gateways[i].DeepCopy()
				l := &gw.Spec.Listeners[w.rng.Intn(len(gw.Spec.Listeners))]
				switch w.rng.Intn(3) {
				case 0:
					if l.Protocol == gwv1.HTTPProtocolType {
						l.Hostname = ptr(gwv1.Hostname([]string{"a.example.com", "b.example.com", "*.wild.example.com"}[w.rng.Intn(3)]))
					}
				case 1:
					if l.Protocol == gwv1.HTTPProtocolType {
						l.Hostname = nil
					}
				default:
					l.Port = gwv1.PortNumber([]int{80, 8080, 9000}[w.rng.Intn(3)])
				}
				next.Gateways = slices.Clone(next.Gateways)
				next.Gateways[i] = gw
				what = "listener " + string(l.Name)
				if w.rng.Intn(3) == 0 {
					next.Gateways = base.Gateways
					what = "listeners restored"
				}
			}
			snap = &next
			before := entriesOf(x)
			checkSame(t, fmt.Sprintf("seed %d step %d (%s)", seed, step, what), x, snap, opts)
			if routeEdit {
				routeEdits++
				for p := range entriesOf(x) {
					if before[p] {
						delta++
						break
					}
				}
			}
			if w.rng.Intn(10) == 0 {
				checkSame(t, fmt.Sprintf("seed %d step %d repeated", seed, step), x, snap, opts)
			}
		}
		t.Logf("seed %d: %d of %d route edits took the attachments over", seed, delta, routeEdits)
		// Route edits with the listeners unchanged take the attachments
		// over: the path under test ran.
		if delta != routeEdits {
			t.Fatalf("seed %d: %d of %d route edits took the listeners' attachments over", seed, delta, routeEdits)
		}
	}
}

// TestTranslatorAdoptsRelistedObjects: after a re-list (every object
// decoded again: new objects, same content) the Translator holds the new
// objects, so the next translation finds them by identity, and it no
// longer keeps the replaced ones (Secrets among them) alive.
func TestTranslatorAdoptsRelistedObjects(t *testing.T) {
	opts := Options{Mesh: testMesh, Addresses: map[input.Key]netip.Addr{
		{Namespace: "default", Name: "eg"}:    netip.MustParseAddr("127.0.0.10"),
		{Namespace: "default", Name: "other"}: netip.MustParseAddr("127.0.0.11"),
	}}
	x := NewTranslator()
	secret, service := func() (weak.Pointer[corev1.Secret], weak.Pointer[corev1.Service]) {
		w := &editWorld{rng: rand.New(rand.NewSource(1)), cert: loadCase(t, "testdata/gateway/https-sni.in.yaml").Secrets[0]}
		snap := w.snapshot()
		checkSame(t, "first", x, snap, opts)
		relisted := relist(snap)
		checkSame(t, "re-listed", x, relisted, opts)
		if x.prev.world.secrets.objs[0] != relisted.Secrets[0] || x.prev.world.services.objs[0] != relisted.Services[0] {
			t.Error("the Translator holds the objects replaced by the re-list")
		}
		checkSame(t, "re-listed again", x, relisted, opts)
		return weak.Make(snap.Secrets[0]), weak.Make(snap.Services[0])
	}()
	for range 3 {
		goruntime.GC()
	}
	if secret.Value() != nil {
		t.Error("the Secret replaced by a re-list is still referenced")
	}
	if service.Value() != nil {
		t.Error("the Service replaced by a re-list is still referenced")
	}
	// The Translator itself stays: it is what must not hold them.
	goruntime.KeepAlive(x)
}

// relist returns a snapshot of copies of every object of s.
func relist(s *input.Snapshot) *input.Snapshot {
	out := *s
	out.GatewayClasses = copies(s.GatewayClasses)
	out.Gateways = copies(s.Gateways)
	out.HTTPRoutes = copies(s.HTTPRoutes)
	out.GRPCRoutes = copies(s.GRPCRoutes)
	out.TLSRoutes = copies(s.TLSRoutes)
	out.TCPRoutes = copies(s.TCPRoutes)
	out.ReferenceGrants = copies(s.ReferenceGrants)
	out.Services = copies(s.Services)
	out.EndpointSlices = copies(s.EndpointSlices)
	out.Secrets = copies(s.Secrets)
	out.Namespaces = copies(s.Namespaces)
	return &out
}

func copies[T runtime.Object](objs []T) []T {
	out := make([]T, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopyObject().(T)
	}
	return out
}
