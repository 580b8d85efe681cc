package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/internal/echo"
)

// TestLabIngressHostNetwork: with the chart's
// ingressController.hostNetwork on and a node selector, Ingresses get no
// Service; a served Ingress's status.loadBalancer lists the address of
// the one selected node; a client outside the cluster reaches the shared
// Ingress at that address on the shared port 8080, plain HTTP and HTTPS
// on the same port, and the dedicated Ingress on its host-listener-port
// (the backend, on the other node, seeing the client's address), while
// the unselected node refuses both ports.
func TestLabIngressHostNetwork(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2, ChartValues: map[string]any{"ingressController": edgeHostNetwork()}})
	ctx := context.Background()
	n1, n2 := l.Network.Nodes[0], l.Network.Nodes[1]
	labelEdge(t, l, n1.Name)
	caPEM, certPEM, keyPEM := testCertificate(t, "web.example")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "web-cert"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/ingress-hostnetwork.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	for _, name := range []string{"shared-web", "dedicated-api"} {
		eventually(t, "the selected node's address in Ingress "+name, 2*time.Minute, func() error {
			ing, err := l.Client.NetworkingV1().Ingresses("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			var got []string
			for _, lb := range ing.Status.LoadBalancer.Ingress {
				got = append(got, lb.IP)
			}
			if !slices.Equal(got, []string{n1.IP.String()}) {
				return fmt.Errorf("status.loadBalancer %v, want [%s]", got, n1.IP)
			}
			return nil
		})
	}
	svcs, err := l.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		if strings.HasPrefix(s.Name, "nodemesh-ingress") {
			t.Fatalf("host-network mode created Service %s/%s", s.Namespace, s.Name)
		}
	}

	client := netip.MustParseAddr("10.250.0.242")
	ext, err := l.Network.AddExternal("client", client)
	if err != nil {
		t.Fatal(err)
	}
	curl := func(url string, node netip.Addr) (string, int) {
		return run(t, []string{"ip", "netns", "exec", ext.Name, "curl", "-sS", "--max-time", "5", "--cacert", caFile,
			"--resolve", "web.example:8080:" + node.String(), url}, "")
	}
	reach := func(what, url string) {
		t.Helper()
		var got echo.Response
		eventually(t, what, time.Minute, func() error {
			out, code := curl(url, n1.IP)
			if code != 0 {
				return fmt.Errorf("curl exit %d: %s", code, out)
			}
			return json.Unmarshal([]byte(out), &got)
		})
		if got.Backend != "echo" || got.Path != "/hello" {
			t.Fatalf("%s: answer %+v, want the echo Pod's for /hello", what, got)
		}
		if xff := got.Headers["x-forwarded-for"]; !slices.Contains(xff, client.String()) {
			t.Fatalf("%s: X-Forwarded-For %v, want the client's address %s", what, xff, client)
		}
	}
	reach("the shared Ingress over HTTP on the shared port", "http://web.example:8080/hello")
	reach("the shared Ingress over HTTPS on the shared port", "https://web.example:8080/hello")
	reach("the dedicated Ingress on its host-listener-port", "http://"+n1.IP.String()+":9090/hello")
	// The unselected node has nothing on either port: the connection is
	// refused (curl exit 7), not served and not left hanging.
	for _, url := range []string{"http://web.example:8080/hello", "http://" + n2.IP.String() + ":9090/hello"} {
		if out, code := curl(url, n2.IP); code != 7 {
			t.Fatalf("unselected %s, %s: curl exit %d (%s), want 7 (connection refused)", n2.Name, url, code, out)
		}
	}
}
