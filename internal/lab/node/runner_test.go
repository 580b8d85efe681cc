package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/lab/network"
)

func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// TestRunnerRunsPods registers a node on a real API server, runs Pods of
// the conformance backend image (and one whose command is a local
// program) as processes in their own namespaces with addresses from the
// node's Pod CIDR, reports their status, serves traffic to their pod IPs,
// explains Pods it cannot run with a waiting reason and an Event, and
// removes deleted Pods.
func TestRunnerRunsPods(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	cluster := controlplane.ForTest(t, "standard")
	core, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	lnet, err := network.Create(network.Config{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lnet.Close() })
	n1 := lnet.Nodes[0]
	logCA, logClient := testClientCA(t)
	r, err := New(Config{Client: core, Node: n1, Dir: t.TempDir(), LocalCommands: true, DNS: netip.MustParseAddr("10.96.0.10"), Images: []Image{
		{Repository: "registry.k8s.io/gateway-api/echo-basic", Program: cluster.Binaries.EchoBasic},
	}, KubeletClientCA: logCA})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	ns := "default"
	pods := core.CoreV1().Pods(ns)
	// The ServiceAccount admission plugin wants the namespace's default
	// account, which kube-controller-manager would create.
	if _, err := core.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// No ServiceAccount controller runs here: do not ask for a token.
	no := false
	mk := func(name, image string, env ...corev1.EnvVar) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			NodeName:                     n1.Name,
			AutomountServiceAccountToken: &no,
			Containers:                   []corev1.Container{{Name: "c", Image: image, Env: env}},
		}}
	}
	local := mk("local", "example.com/anything:1")
	local.Spec.Containers[0].Command = []string{"sleep"}
	local.Spec.Containers[0].Args = []string{"1000"}
	notLocal := mk("not-local", "example.com/anything:1")
	notLocal.Spec.Containers[0].Command = []string{"/no/such/program"}
	podName := corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}
	podNS := corev1.EnvVar{Name: "NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}
	for _, p := range []*corev1.Pod{
		mk("echo-a", "registry.k8s.io/gateway-api/echo-basic:v1.5.1", podName, podNS),
		mk("echo-b", "registry.k8s.io/gateway-api/echo-basic@sha256:0000", podName, podNS),
		mk("unknown", "example.com/nothing:1"),
		local, notLocal,
	} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	ips := map[string]string{}
	for _, name := range []string{"echo-a", "echo-b", "local"} {
		eventually(t, name+" ready", func() error {
			p, err := pods.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || !podReady(p) {
				return fmt.Errorf("status %+v", p.Status)
			}
			if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !n1.PodCIDR.Contains(ip) || p.Status.HostIP != n1.IP.String() {
				return fmt.Errorf("pod IP %s, host IP %s: not from node %s (%s, %s)", p.Status.PodIP, p.Status.HostIP, n1.Name, n1.PodCIDR, n1.IP)
			}
			ips[name] = p.Status.PodIP
			return nil
		})
	}
	if ips["echo-a"] == ips["echo-b"] {
		t.Fatalf("two pods share %s", ips["echo-a"])
	}
	if ips["echo-a"] == ips["local"] {
		t.Fatalf("two pods share %s", ips["local"])
	}
	// The node object carries the Pod CIDR, and every Pod its resolv.conf.
	node, err := core.CoreV1().Nodes().Get(ctx, n1.Name, metav1.GetOptions{})
	if err != nil || node.Spec.PodCIDR != n1.PodCIDR.String() || node.Labels["kubernetes.io/hostname"] != n1.Name {
		t.Fatalf("node %+v, %v", node, err)
	}
	resolv, err := os.ReadFile(filepath.Join("/etc/netns", network.PodNamespace(lnet.ID, string(mustPod(t, pods, "echo-a").UID)), "resolv.conf"))
	if err != nil || !strings.Contains(string(resolv), "nameserver 10.96.0.10") || !strings.Contains(string(resolv), "search default.svc.cluster.local svc.cluster.local cluster.local") {
		t.Fatalf("resolv.conf %q, %v", resolv, err)
	}
	// Both backends bind :3000; each answers on its own address with its
	// own identity, reached from the node namespace.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n1.Dial}}
	for _, name := range []string{"echo-a", "echo-b"} {
		ip := ips[name]
		eventually(t, "traffic to "+name, func() error {
			resp, err := client.Get("http://" + net.JoinHostPort(ip, "3000") + "/hello")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var echo struct {
				Pod, Namespace, Path string
			}
			if err := json.Unmarshal(b, &echo); err != nil {
				return fmt.Errorf("decoding %q: %w", b, err)
			}
			if echo.Pod != name || echo.Namespace != ns || echo.Path != "/hello" {
				return fmt.Errorf("echo %+v", echo)
			}
			return nil
		})
	}
	// Logs, as the API server reads them: over TLS, with a client
	// certificate of the configured CA only.
	logURL := "https://" + net.JoinHostPort(n1.IP.String(), "10250") + "/containerLogs/" + ns + "/echo-a/c"
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n1.Dial,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{logClient}}}}
	eventually(t, "echo-a logs the request", func() error {
		resp, err := withCert.Get(logURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), "Echoing back request made to /hello to client") {
			return fmt.Errorf("%d %q", resp.StatusCode, b)
		}
		return nil
	})
	if resp, err := withCert.Get(logURL + "?sinceTime=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != 0 {
			t.Errorf("logs since an hour from now: %d %q, want 200 and nothing", resp.StatusCode, b)
		}
	}
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n1.Dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := noCert.Get(logURL); err == nil {
		resp.Body.Close()
		t.Errorf("logs without a client certificate: %d, want a refused handshake", resp.StatusCode)
	}
	eventually(t, "a command that is not a local program waits", func() error {
		p, err := pods.Get(ctx, "not-local", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil ||
			p.Status.ContainerStatuses[0].State.Waiting.Reason != "Unsupported" ||
			!strings.Contains(p.Status.ContainerStatuses[0].State.Waiting.Message, "/no/such/program") {
			return fmt.Errorf("status %+v", p.Status.ContainerStatuses)
		}
		return nil
	})
	eventually(t, "an Event explains the unknown image", func() error {
		evs, err := core.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=unknown"})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning && e.Reason == "ImageNotRunnable" && strings.Contains(e.Message, "example.com/nothing:1") {
				return nil
			}
		}
		return fmt.Errorf("events %+v", evs.Items)
	})
	eventually(t, "unknown image waits", func() error {
		p, err := pods.Get(ctx, "unknown", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil ||
			p.Status.ContainerStatuses[0].State.Waiting.Reason != "ImageNotRunnable" ||
			!strings.Contains(p.Status.ContainerStatuses[0].State.Waiting.Message, "example.com/nothing:1") {
			return fmt.Errorf("status %+v", p.Status.ContainerStatuses)
		}
		if podReady(p) {
			return fmt.Errorf("pod without a program is Ready")
		}
		return nil
	})

	// Deleting a Pod stops its process, removes its namespace and the
	// object itself (no kubelet would otherwise confirm the deletion).
	if err := pods.Delete(ctx, "echo-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "echo-a removed", func() error {
		_, err := pods.Get(ctx, "echo-a", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	dctx, dcancel := context.WithTimeout(ctx, time.Second)
	defer dcancel()
	if c, err := n1.Dial(dctx, "tcp", net.JoinHostPort(ips["echo-a"], "3000")); err == nil {
		c.Close()
		t.Fatal("deleted pod still answers")
	}
}

func mustPod(t *testing.T, pods interface {
	Get(context.Context, string, metav1.GetOptions) (*corev1.Pod, error)
}, name string) *corev1.Pod {
	t.Helper()
	p, err := pods.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"registry.k8s.io/gateway-api/echo-basic:v1.5.1":    "registry.k8s.io/gateway-api/echo-basic",
		"registry.k8s.io/gateway-api/echo-basic@sha256:ab": "registry.k8s.io/gateway-api/echo-basic",
		"localhost:5000/echo":                              "localhost:5000/echo",
		"localhost:5000/echo:v1":                           "localhost:5000/echo",
		"localhost/echo":                                   "localhost/echo",
		"echo":                                             "docker.io/library/echo",
		"busybox:1.36":                                     "docker.io/library/busybox",
		"docker.io/busybox":                                "docker.io/library/busybox",
		"index.docker.io/cilium/starwars":                  "docker.io/cilium/starwars",
		"cilium/starwars":                                  "docker.io/cilium/starwars",
		"quay.io/cilium/json-mock:v1.3.8@sha256:5aad":      "quay.io/cilium/json-mock",
	} {
		if got := Repository(in); got != want {
			t.Errorf("repository(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPathRewriter(t *testing.T) {
	rw := newPathRewriter(corev1.Container{VolumeMounts: []corev1.VolumeMount{{Name: "s", MountPath: "/etc/secret-volume/"}}}, map[string]string{"s": "/pods/x/volumes/s"})
	for in, want := range map[string]string{
		"/etc/secret-volume/crt": "/pods/x/volumes/s/crt",
		"/etc/secret-volume":     "/pods/x/volumes/s",
		"/etc/secret-volumes/a":  "/etc/secret-volumes/a",
		"3000":                   "3000",
	} {
		if got := rw.rewrite(in); got != want {
			t.Errorf("rewrite(%q) = %q, want %q", in, got, want)
		}
	}
}

// testClientCA writes a CA to a file and returns its path and a client
// certificate it signed.
func testClientCA(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "apiserver"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
