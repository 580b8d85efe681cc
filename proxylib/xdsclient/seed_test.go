package xdsclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// seed is one fuzz input: a response stream in the fuzz encoding.
type seed struct {
	delta bool
	data  []byte
}

// goldenKinds maps the sections of the translator's golden files to the
// resource type and message they hold, in the order the agent's server
// delivers them (ADS: clusters, endpoints, listeners, routes, secrets,
// extension configurations).
var goldenKinds = []struct {
	section, typeURL string
	msg              func() proto.Message
	name             func(proto.Message) string
}{
	{"clusters", resource.ClusterType, func() proto.Message { return &clusterv3.Cluster{} },
		func(m proto.Message) string { return m.(*clusterv3.Cluster).GetName() }},
	{"clusterLoadAssignments", resource.EndpointType, func() proto.Message { return &endpointv3.ClusterLoadAssignment{} },
		func(m proto.Message) string { return m.(*endpointv3.ClusterLoadAssignment).GetClusterName() }},
	{"listeners", resource.ListenerType, func() proto.Message { return &listenerv3.Listener{} },
		func(m proto.Message) string { return m.(*listenerv3.Listener).GetName() }},
	{"routeConfigurations", resource.RouteType, func() proto.Message { return &routev3.RouteConfiguration{} },
		func(m proto.Message) string { return m.(*routev3.RouteConfiguration).GetName() }},
	{"secrets", resource.SecretType, func() proto.Message { return &tlsv3.Secret{} },
		func(m proto.Message) string { return m.(*tlsv3.Secret).GetName() }},
	{"extensionConfigs", resource.ExtensionConfigType, func() proto.Message { return &corev3.TypedExtensionConfig{} },
		func(m proto.Message) string { return m.(*corev3.TypedExtensionConfig).GetName() }},
}

// goldenSeeds turns every golden output of the xDS translator into two
// response streams, state of the world and delta: each type in delivery
// order, then an unchanged listener update, then the removal of every
// listener. The goldens' placeholder certificates are replaced by a real
// key pair so TLS listeners can be accepted too.
func goldenSeeds(tb testing.TB) []seed {
	files, _ := filepath.Glob("../../xds/translator/testdata/*.out.yaml")
	policy, _ := filepath.Glob("../../xds/translator/testdata/policy/*.out.yaml")
	files = append(files, policy...)
	if len(files) == 0 {
		tb.Fatal("no translator golden files found to seed from")
	}
	cert, key := testKeyPair(tb)
	var seeds []seed
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		var sotw, delta []byte
		nonce := 0
		next := func() string { nonce++; return strconv.Itoa(nonce) }
		var listeners []string
		var listenerAnys []*anypb.Any
		for _, k := range goldenKinds {
			items, _ := doc[k.section].([]any)
			if len(items) == 0 {
				continue
			}
			var anys []*anypb.Any
			var dres []*discoveryv3.Resource
			for i, item := range items {
				js, err := json.Marshal(item)
				if err != nil {
					tb.Fatal(err)
				}
				m := k.msg()
				if err := protojson.Unmarshal(js, m); err != nil {
					tb.Fatalf("%s %s[%d]: %v", filepath.Base(f), k.section, i, err)
				}
				if s, ok := m.(*tlsv3.Secret); ok {
					s.Type = &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
						CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: cert}},
						PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: key}},
					}}
				}
				a, err := anypb.New(m)
				if err != nil {
					tb.Fatal(err)
				}
				anys = append(anys, a)
				dres = append(dres, &discoveryv3.Resource{Name: k.name(m), Version: "1", Resource: a})
				if k.typeURL == resource.ListenerType {
					listeners = append(listeners, k.name(m))
				}
			}
			if k.typeURL == resource.ListenerType {
				listenerAnys = anys
			}
			sotw = appendChunk(tb, sotw, &discoveryv3.DiscoveryResponse{TypeUrl: k.typeURL, VersionInfo: "1", Nonce: next(), Resources: anys})
			delta = appendChunk(tb, delta, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: k.typeURL, SystemVersionInfo: "1", Nonce: next(), Resources: dres})
		}
		sotw = appendChunk(tb, sotw, &discoveryv3.DiscoveryResponse{TypeUrl: resource.ListenerType, VersionInfo: "2", Nonce: next(), Resources: listenerAnys})
		sotw = appendChunk(tb, sotw, &discoveryv3.DiscoveryResponse{TypeUrl: resource.ListenerType, VersionInfo: "3", Nonce: next()})
		delta = appendChunk(tb, delta, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resource.ListenerType, SystemVersionInfo: "3", Nonce: next(), RemovedResources: listeners})
		seeds = append(seeds, seed{false, sotw}, seed{true, delta})
	}
	return seeds
}

// appendChunk appends m in the fuzz encoding: uvarint length, then bytes.
func appendChunk(tb testing.TB, dst []byte, m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// testKeyPair returns a self-signed certificate and its key, PEM-encoded.
func testKeyPair(tb testing.TB) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz.test"},
		DNSNames: []string{"fuzz.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestGoldenSeedsAccepted runs the fuzz seeds through the same checks and
// requires every response to be ACKed: the proxy accepts every golden
// output of the xDS translator, delivered in either protocol, and the
// seeds start the fuzzer from accepted configurations.
func TestGoldenSeedsAccepted(t *testing.T) {
	for i, s := range goldenSeeds(t) {
		e := newFuzzEnv(t)
		if s.delta {
			e.runDelta(t, s.data)
		} else {
			e.runSotW(t, s.data)
		}
		e.checkFresh(t)
		e.close()
		if n := len(chunks(s.data)); e.nacks != 0 || e.acks != n {
			t.Errorf("seed %d (delta %v): %d of %d responses ACKed; NACKs: %q", i, s.delta, e.acks, n, e.nackErrs)
		}
	}
}

// TestDeltaNamedTypeBeforeSubscription: a route configuration that
// arrives on a delta stream before the stream subscribed to route
// configurations is applied and ACKed, as on a state-of-the-world stream,
// not NACKed as an unsupported type.
func TestDeltaNamedTypeBeforeSubscription(t *testing.T) {
	rc, err := anypb.New(&routev3.RouteConfiguration{Name: "rc"})
	if err != nil {
		t.Fatal(err)
	}
	data := appendChunk(t, nil, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resource.RouteType, Nonce: "1",
		Resources: []*discoveryv3.Resource{{Name: "rc", Version: "a", Resource: rc}}})
	e := newFuzzEnv(t)
	defer e.close()
	e.runDelta(t, data)
	if e.acks != 1 || e.nacks != 0 {
		t.Fatalf("%d ACKs, %d NACKs %q; want the route configuration ACKed", e.acks, e.nacks, e.nackErrs)
	}
	if v := e.c.resVers[resource.RouteType]["rc"]; v != "a" {
		t.Fatalf("accepted version of rc = %q, want a (sent as initial_resource_versions when subscribing)", v)
	}
}
