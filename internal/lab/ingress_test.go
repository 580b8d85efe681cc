package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/gateway/controller"
	"github.com/nodemesh/nodemesh/internal/echo"
)

// ingressExamples holds Cilium's Ingress examples, which these tests apply
// unchanged.
const ingressExamples = "../../examples/ingress"

// TestLabIngressCiliumExamples runs Cilium's Ingress examples on two
// nodes against the real API server, with the lab's stand-ins for
// bookinfo (testdata/ingress-bookinfo.yaml: the echo workload under the
// same Service names and ports) and the chart's IngressClass named
// cilium (ingressController.className), and a client outside the cluster
// (a host on the lab network that is not a node):
//   - AT-ING-01 basic-ingress: a LoadBalancer Service is made for it, the
//     load balancer's address lands in the Ingress status, and through
//     either node /details/1 reaches details, / productpage, /ratings
//     productpage (which answers 404 in the real bookinfo; the echo
//     stand-in answers every path), the backend seeing the client's
//     address in X-Forwarded-For and X-Envoy-External-Address (AT-ING-09),
//     and a client Pod inside the cluster gets in at the same address
//     (AT-ING-06 step 1, no policy);
//   - AT-ING-02 path types and precedence, before and after the /impl.*
//     patch;
//   - AT-ING-04 tls-ingress with a Secret of a test CA: a client trusting
//     the CA gets details over HTTPS, one that does not is refused the
//     handshake, and plain HTTP still serves the paths (no force-https);
//   - dedicated and shared load-balancer modes: each dedicated Ingress has
//     its own Service and address, the shared ones one between them.
func TestLabIngressCiliumExamples(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2, ChartValues: map[string]any{
		"ingressController": map[string]any{"className": "cilium"},
	}})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/ingress-bookinfo.yaml", filepath.Join(ingressExamples, "ingress-path-types.yaml")}); err != nil {
		t.Fatal(err)
	}
	caPEM, certPEM, keyPEM := testCertificate(t, "bookinfo.cilium.rocks", "hipstershop.cilium.rocks")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-cert"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyPaths(ctx, l.Config, []string{
		filepath.Join(ingressExamples, "basic-ingress.yaml"),
		filepath.Join(ingressExamples, "ingress-path-types-ingress.yaml"),
		filepath.Join(ingressExamples, "tls-ingress.yaml"),
		"testdata/ingress-shared.yaml",
	}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 3*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	client := netip.MustParseAddr("10.250.0.240")
	ext, err := l.Network.AddExternal("client", client)
	if err != nil {
		t.Fatal(err)
	}
	st, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	pool := netip.MustParsePrefix(DefaultLoadBalancerPool)
	addrs := map[string]netip.Addr{}
	for _, name := range []string{"basic-ingress", "multiple-path-types", "tls-ingress", "shared-details", "shared-ratings"} {
		eventually(t, "the load-balancer address of Ingress "+name, 2*time.Minute, func() error {
			ing, err := l.Client.NetworkingV1().Ingresses("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			lb := ing.Status.LoadBalancer.Ingress
			if len(lb) != 1 {
				return fmt.Errorf("status.loadBalancer %+v", lb)
			}
			a, err := netip.ParseAddr(lb[0].IP)
			if err != nil || !pool.Contains(a) {
				return fmt.Errorf("status.loadBalancer %+v: not in the load balancer's pool %s", lb, pool)
			}
			addrs[name] = a
			return nil
		})
	}
	// curl from the external host; host names resolve to addr.
	curl := func(addr netip.Addr, args ...string) (string, int) {
		argv := append([]string{"ip", "netns", "exec", ext.Name, "curl", "-sS", "--max-time", "5"}, args...)
		for _, h := range []string{"pathtypes.example.com", "bookinfo.cilium.rocks", "hipstershop.cilium.rocks", "shared.example.com"} {
			argv = append(argv, "--resolve", h+":80:"+addr.String(), "--resolve", h+":443:"+addr.String())
		}
		return run(t, argv, "")
	}
	// get fetches url through addr and decodes the echo's answer.
	get := func(addr netip.Addr, url string, args ...string) (echo.Response, error) {
		var got echo.Response
		out, code := curl(addr, append(args, url)...)
		if code != 0 {
			return got, fmt.Errorf("curl %s: exit %d: %s", url, code, out)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			return got, fmt.Errorf("curl %s: %v: %s", url, err, out)
		}
		return got, nil
	}
	// served checks that url through addr reaches a Pod of Deployment
	// backend with the path intact.
	served := func(addr netip.Addr, url, backend, path string, args ...string) error {
		got, err := get(addr, url, args...)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(got.Backend, backend+"-") || got.Path != path {
			return fmt.Errorf("%s: answered by %q for %q, want a Pod of %s for %s", url, got.Backend, got.Path, backend, path)
		}
		return nil
	}

	t.Run("AT-ING-01 basic-ingress through either node", func(t *testing.T) {
		addr := addrs["basic-ingress"]
		svc, err := l.Client.CoreV1().Services("default").Get(ctx, controller.IngressServiceName("basic-ingress"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Status.LoadBalancer.Ingress) != 1 || svc.Status.LoadBalancer.Ingress[0].IP != addr.String() {
			t.Fatalf("Service %s: type %s, load balancer %+v; want a LoadBalancer at %s", svc.Name, svc.Spec.Type, svc.Status.LoadBalancer, addr)
		}
		for _, n := range l.Network.Nodes {
			pinTo(t, ctx, ext, addr, n.Namespace)
			eventually(t, "basic-ingress through "+n.Name, time.Minute, func() error {
				return served(addr, "http://"+addr.String()+"/details/1", "details-v1", "/details/1")
			})
			for _, c := range []struct{ path, backend string }{{"/", "productpage-v1"}, {"/ratings", "productpage-v1"}, {"/productpage", "productpage-v1"}} {
				if err := served(addr, "http://"+addr.String()+c.path, c.backend, c.path); err != nil {
					t.Fatalf("through %s: %v", n.Name, err)
				}
			}
			// AT-ING-09: the backend sees the client's address.
			got, err := get(addr, "http://"+addr.String()+"/details/1")
			if err != nil {
				t.Fatal(err)
			}
			if xff := got.Headers["x-forwarded-for"]; !slices.Contains(xff, client.String()) {
				t.Errorf("through %s: X-Forwarded-For %v, want the client's address %s", n.Name, xff, client)
			}
			if ea := got.Headers["x-envoy-external-address"]; !slices.Equal(ea, []string{client.String()}) {
				t.Errorf("through %s: X-Envoy-External-Address %v, want %s", n.Name, ea, client)
			}
		}
		// AT-ING-06 step 1 (no policy): a client inside the cluster gets
		// in through the same address.
		argv, err := st.ExecArgv(ctx, "default", "client", "", []string{"curl", "-sS", "--max-time", "5", "http://" + addr.String() + "/details/1"})
		if err != nil {
			t.Fatal(err)
		}
		var got echo.Response
		eventually(t, "basic-ingress from the client Pod", time.Minute, func() error {
			out, code := run(t, argv, "")
			if code != 0 {
				return fmt.Errorf("curl exit %d: %s", code, out)
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		if !strings.HasPrefix(got.Backend, "details-v1-") || got.Path != "/details/1" {
			t.Fatalf("from the client Pod: answered by %q for %q, want details for /details/1", got.Backend, got.Path)
		}
	})

	t.Run("AT-ING-02 path types and precedence", func(t *testing.T) {
		addr := addrs["multiple-path-types"]
		check := func(cases [][2]string) {
			t.Helper()
			for _, c := range cases {
				url := "http://pathtypes.example.com" + c[0]
				eventually(t, url, time.Minute, func() error { return served(addr, url, c[1], c[0]) })
			}
		}
		check([][2]string{{"/", "prefixpath"}, {"/exact", "exactpath"}, {"/prefix", "prefixpath2"}, {"/impl", "implpath"}, {"/implementation", "implpath2"}})
		// Cilium's patch of the last path to /impl.*: it now matches /impl
		// as well and, the longer expression, comes first.
		patch := `[{"op": "replace", "path": "/spec/rules/0/http/paths/4/path", "value": "/impl.*"}]`
		if _, err := l.Client.NetworkingV1().Ingresses("default").Patch(ctx, "multiple-path-types", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		check([][2]string{{"/impl", "implpath2"}, {"/implementation", "implpath2"}, {"/exact", "exactpath"}, {"/prefix", "prefixpath2"}, {"/", "prefixpath"}})
	})

	t.Run("AT-ING-04 TLS termination", func(t *testing.T) {
		addr := addrs["tls-ingress"]
		eventually(t, "https://bookinfo.cilium.rocks/details/1", time.Minute, func() error {
			return served(addr, "https://bookinfo.cilium.rocks/details/1", "details-v1", "/details/1", "--cacert", caFile)
		})
		if err := served(addr, "https://bookinfo.cilium.rocks/", "productpage-v1", "/", "--cacert", caFile); err != nil {
			t.Fatal(err)
		}
		// -k skips verification; without it and without the CA the
		// handshake is refused (curl's exit 60: peer certificate cannot be
		// authenticated).
		if err := served(addr, "https://bookinfo.cilium.rocks/details/1", "details-v1", "/details/1", "-k"); err != nil {
			t.Fatal(err)
		}
		if out, code := curl(addr, "https://bookinfo.cilium.rocks/details/1"); code != 60 {
			t.Fatalf("https without the CA: exit %d: %s (want 60, an unknown authority)", code, out)
		}
		// Plain HTTP keeps serving the paths (gateway's documented choice
		// without force-https; Cilium's guide reports a timeout there).
		if err := served(addr, "http://bookinfo.cilium.rocks/details/1", "details-v1", "/details/1"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("dedicated and shared load balancers", func(t *testing.T) {
		seen := map[netip.Addr]string{}
		for _, name := range []string{"basic-ingress", "multiple-path-types", "tls-ingress", "shared-details"} {
			if other, ok := seen[addrs[name]]; ok {
				t.Fatalf("Ingresses %s and %s share %s", other, name, addrs[name])
			}
			seen[addrs[name]] = name
		}
		if addrs["shared-details"] != addrs["shared-ratings"] {
			t.Fatalf("shared Ingresses at %s and %s, want one address", addrs["shared-details"], addrs["shared-ratings"])
		}
		svc, err := l.Client.CoreV1().Services("kube-system").Get(ctx, controller.SharedIngressServiceName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if lb := svc.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP != addrs["shared-details"].String() {
			t.Fatalf("shared Service load balancer %+v, want %s", lb, addrs["shared-details"])
		}
		for _, name := range []string{"shared-details", "shared-ratings"} {
			if _, err := l.Client.CoreV1().Services("default").Get(ctx, controller.IngressServiceName(name), metav1.GetOptions{}); err == nil {
				t.Fatalf("shared Ingress %s has a dedicated Service", name)
			}
		}
		addr := addrs["shared-details"]
		eventually(t, "shared /details", time.Minute, func() error {
			return served(addr, "http://shared.example.com/details/2", "details-v1", "/details/2")
		})
		if err := served(addr, "http://shared.example.com/ratings", "ratings-v1", "/ratings"); err != nil {
			t.Fatal(err)
		}
	})
}

// pinTo makes the external host send traffic for addr to the node whose
// namespace is node, as a load balancer electing that node would.
func pinTo(t *testing.T, ctx context.Context, ext *testbed.Namespace, addr netip.Addr, node *testbed.Namespace) {
	t.Helper()
	mac, err := node.Run(ctx, "cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := ext.Run(ctx, "ip", "neigh", "replace", addr.String(), "lladdr", strings.TrimSpace(mac), "dev", "eth0", "nud", "permanent"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// testCertificate returns a fresh CA and a certificate it signed for
// names, PEM-encoded.
func testCertificate(t *testing.T, names ...string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}
