package perf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// The benchmarks' input: one Gateway with an HTTP listener (port 80) and
// an HTTPS listener (port 443, one certificate), both accepting routes
// from every namespace; n HTTPRoutes spread over 10 namespaces and 50
// hostnames, each with 2-4 rules of 1-2 matches (path prefix and a header),
// a request header filter and two weighted backends; n/2 Services (at
// least 10) with one EndpointSlice of three endpoints each. Every route
// attaches to both listeners, so each of its matches becomes one Envoy
// route in each of the two RouteConfigurations.

const scenarioNamespaces = 10

var scenarioSizes = []int{10, 100, 1000, 5000}

var scenarioAddrs = map[input.Key]netip.Addr{{Namespace: "infra", Name: "gw"}: netip.MustParseAddr("127.0.100.1")}

func scenario(n int) *input.Snapshot {
	from := gwv1.NamespacesFromAll
	all := &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &from}}
	snap := &input.Snapshot{
		GatewayClasses: []*gwv1.GatewayClass{{
			TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "GatewayClass"},
			ObjectMeta: metav1.ObjectMeta{Name: "nodemesh"},
			Spec:       gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName},
		}},
		Gateways: []*gwv1.Gateway{{
			TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "gw"},
			Spec: gwv1.GatewaySpec{
				GatewayClassName: "nodemesh",
				Listeners: []gwv1.Listener{
					{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80, AllowedRoutes: all},
					{Name: "https", Protocol: gwv1.HTTPSProtocolType, Port: 443, AllowedRoutes: all,
						TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "gw-cert"}}}},
				},
			},
		}},
	}
	cert, key := scenarioKeyPair()
	snap.Secrets = []*corev1.Secret{{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "gw-cert"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	}}
	// Service s lives in namespace team-(s%10), like the routes using it.
	services := max((n/2+9)/10*10, 10)
	ns := func(i int) string { return fmt.Sprintf("team-%d", i%scenarioNamespaces) }
	for s := range services {
		name := fmt.Sprintf("svc-%d", s)
		snap.Services = append(snap.Services, &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns(s), Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
		port, portName := int32(8080), "http"
		var eps []discoveryv1.Endpoint
		for e := range 3 {
			eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", s/250, s%250, e+1)}})
		}
		snap.EndpointSlices = append(snap.EndpointSlices, &discoveryv1.EndpointSlice{
			TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns(s), Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
			Endpoints:   eps,
		})
	}
	for r := range n {
		snap.HTTPRoutes = append(snap.HTTPRoutes, scenarioRoute(r, services, fmt.Sprintf("r%d", r)))
	}
	// Providers hand over snapshots sorted by namespace and name.
	sorted, err := input.Build(objectsOf(snap))
	if err != nil {
		panic(err)
	}
	return sorted
}

// objectsOf lists a snapshot's objects.
func objectsOf(s *input.Snapshot) []input.Object {
	var out []input.Object
	add := func(o runtime.Object) { out = append(out, input.Object{Obj: o}) }
	for _, o := range s.GatewayClasses {
		add(o)
	}
	for _, o := range s.Gateways {
		add(o)
	}
	for _, o := range s.Secrets {
		add(o)
	}
	for _, o := range s.Services {
		add(o)
	}
	for _, o := range s.EndpointSlices {
		add(o)
	}
	for _, o := range s.HTTPRoutes {
		add(o)
	}
	return out
}

// scenarioRoute is HTTPRoute number r of the scenario; tag is the value
// of its request header filter, which an edit changes.
func scenarioRoute(r, services int, tag string) *gwv1.HTTPRoute {
	str := func(s string) *string { return &s }
	gwNS := gwv1.Namespace("infra")
	backend := func(k int) gwv1.HTTPBackendRef {
		s := ((r/10+k)%(services/10))*10 + r%10
		w := int32(1 + k*3)
		port := gwv1.PortNumber(80)
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(fmt.Sprintf("svc-%d", s)), Port: &port},
			Weight:                 &w,
		}}
	}
	var rules []gwv1.HTTPRouteRule
	for k := range 2 + r%3 {
		var matches []gwv1.HTTPRouteMatch
		for m := range 1 + (r+k)%2 {
			pt := gwv1.PathMatchPathPrefix
			matches = append(matches, gwv1.HTTPRouteMatch{
				Path:    &gwv1.HTTPPathMatch{Type: &pt, Value: str(fmt.Sprintf("/r%d/k%d/m%d", r, k, m))},
				Headers: []gwv1.HTTPHeaderMatch{{Name: "x-tenant", Value: fmt.Sprintf("t%d", m)}},
			})
		}
		rules = append(rules, gwv1.HTTPRouteRule{
			Matches: matches,
			Filters: []gwv1.HTTPRouteFilter{{
				Type:                  gwv1.HTTPRouteFilterRequestHeaderModifier,
				RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-route", Value: tag}}},
			}},
			BackendRefs: []gwv1.HTTPBackendRef{backend(0), backend(1)},
		})
	}
	return &gwv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("team-%d", r%scenarioNamespaces), Name: fmt.Sprintf("route-%d", r)},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", Namespace: &gwNS}}},
			Hostnames:       []gwv1.Hostname{gwv1.Hostname(fmt.Sprintf("app%d.example.com", r%50))},
			Rules:           rules,
		},
	}
}

// scenarioServices is the number of Services scenario(n) holds.
func scenarioServices(n int) int { return max((n/2+9)/10*10, 10) }

var keyPair struct {
	once      sync.Once
	cert, key []byte
}

// scenarioKeyPair is a self-signed certificate for the HTTPS listener,
// made once per process.
func scenarioKeyPair() (cert, key []byte) {
	keyPair.once.Do(func() {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "*.example.com"},
			DNSNames:     []string{"*.example.com"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			panic(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			panic(err)
		}
		keyPair.cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPair.key = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	})
	return keyPair.cert, keyPair.key
}
