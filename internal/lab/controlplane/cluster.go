package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// Options configure a Cluster.
type Options struct {
	// Binaries to run. Required.
	Binaries *Binaries
	// Dir holds data, certificates, the kubeconfig and logs. Required;
	// the caller removes it.
	Dir string
	// ControllerManager also runs kube-controller-manager with the
	// controllers workloads need (Deployments, ReplicaSets, StatefulSets,
	// DaemonSets, Jobs, EndpointSlices, ServiceAccounts and their tokens,
	// the cluster CA ConfigMap, namespace deletion, garbage collection).
	// Integration tests of nodemesh's own controllers do not need it.
	ControllerManager bool
	// KubernetesEndpoints keeps the "kubernetes" Service's endpoints
	// pointing at the API server (the lease reconciler), so Pods reach it
	// at its ClusterIP. Without it no endpoints are written: nothing
	// routes Service traffic in a bare control plane.
	KubernetesEndpoints bool
	// Host is the address everything binds (default 127.0.0.1); the lab
	// uses its control-plane namespace's address on the lab network.
	Host string
	// Command builds the command that runs a program (default
	// exec.Command). The lab wraps programs so they run inside its
	// control-plane network namespace.
	Command func(name string, args ...string) *exec.Cmd
	// RBAC authorizes requests with RBAC (the roles the API server
	// bootstraps plus whatever is applied) instead of allowing every
	// authenticated request. The admin token is in system:masters, which
	// RBAC always allows, so only clients with other credentials (a
	// ServiceAccount token) are limited. The lab sets it so the mesh runs
	// under the chart's roles; integration tests of single controllers
	// keep AlwaysAllow.
	RBAC bool
	// Dial connects to the programs (default: a plain dialer). It must
	// reach the network namespace Command runs them in; it also becomes
	// the Dial of the returned rest.Config.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Cluster is a running etcd + kube-apiserver (+ kube-controller-manager).
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig for the cluster.
	Kubeconfig string
	// Config is the same as a rest.Config.
	Config *rest.Config
	// Token is the admin bearer token.
	Token string
	// Server is the API server's URL and CAFile the CA that verifies it
	// (the cluster CA, also in every namespace's kube-root-ca.crt).
	Server, CAFile string
	// Binaries are the programs the cluster runs (and the conformance
	// backends built with them).
	Binaries *Binaries

	dir     string
	command func(name string, args ...string) *exec.Cmd
	mu      sync.Mutex
	procs   []*Process
}

// Start starts the cluster and returns once the API server is ready. On
// error everything started so far is stopped.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Binaries == nil || o.Dir == "" {
		return nil, errors.New("starting cluster: Binaries and Dir are required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Command == nil {
		o.Command = exec.Command
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
	c = &Cluster{dir: o.Dir, command: o.Command, Binaries: o.Binaries}
	// The error returns below set c to nil before this runs: stop what was
	// started through a copy of the pointer.
	started := c
	defer func() {
		if err != nil {
			started.Stop()
			c = nil
		}
	}()
	for _, d := range []string{"etcd", "pki", "logs"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("creating cluster directory: %w", err)
		}
	}
	ports, err := freePorts(ctx, o.Dial, o.Host, 4)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort, kcmPort := ports[0], ports[1], ports[2], ports[3]

	etcdURL := fmt.Sprintf("http://%s:%d", o.Host, etcdClient)
	peerURL := fmt.Sprintf("http://%s:%d", o.Host, etcdPeer)
	etcd, err := c.start(ctx, "etcd", o.Binaries.Etcd,
		"--name=default",
		"--data-dir="+filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		// Test data is thrown away; fsync only costs time.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return nil, err
	}
	plain := &http.Client{Transport: &http.Transport{DialContext: o.Dial}}
	insecure := &http.Client{Transport: &http.Transport{DialContext: o.Dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", nil, 60*time.Second, plain); err != nil {
		return nil, fmt.Errorf("waiting for etcd: %w", err)
	}

	pki := filepath.Join(o.Dir, "pki")
	saKey, saPub, err := serviceAccountKeys(pki)
	if err != nil {
		return nil, err
	}
	ca, servingCert, servingKey, err := servingCerts(pki, o.Host)
	if err != nil {
		return nil, err
	}
	reconciler := "none"
	if o.KubernetesEndpoints {
		reconciler = "lease"
	}
	authz := "AlwaysAllow"
	if o.RBAC {
		authz = "RBAC"
	}
	c.Token, err = randomToken()
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(pki, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.Token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing token file: %w", err)
	}
	api, err := c.start(ctx, "kube-apiserver", o.Binaries.APIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address="+o.Host,
		"--advertise-address="+o.Host,
		"--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+servingCert,
		"--tls-private-key-file="+servingKey,
		"--token-auth-file="+tokens,
		// Pod logs: the API server reaches the lab's kubelets at their
		// InternalIP with a client certificate of the cluster CA; like
		// kube-apiserver's default, it does not verify their serving
		// certificates (no --kubelet-certificate-authority).
		"--kubelet-client-certificate="+filepath.Join(pki, kubeletClientCertFile),
		"--kubelet-client-key="+filepath.Join(pki, kubeletClientKeyFile),
		"--kubelet-preferred-address-types=InternalIP",
		"--authorization-mode="+authz,
		// As kubeadm and kind: the mesh's agent DaemonSet is privileged.
		"--allow-privileged=true",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub,
		"--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range="+ServiceCIDR,
		"--endpoint-reconciler-type="+reconciler,
		// A test cluster has one client at a time worth protecting.
		"--enable-priority-and-fairness=false",
		// Teardown should take a moment, not the production default.
		"--shutdown-delay-duration=0s",
		"--shutdown-watch-termination-grace-period=0s",
		"--shutdown-send-retry-after=false",
		"--profiling=false",
		"--v=0",
	)
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("https://%s", net.JoinHostPort(o.Host, strconv.Itoa(apiPort)))
	if err := waitHTTP(ctx, api, host+"/readyz", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+c.Token) }, 120*time.Second, insecure); err != nil {
		return nil, fmt.Errorf("waiting for kube-apiserver: %w", err)
	}
	c.Server, c.CAFile = host, ca
	c.Config = &rest.Config{Host: host, BearerToken: c.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: ca}, QPS: 200, Burst: 400, Dial: o.Dial}
	c.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, host, ca, c.Token); err != nil {
		return nil, err
	}

	if o.ControllerManager {
		kcm, err := c.start(ctx, "kube-controller-manager", o.Binaries.ControllerManager,
			"--kubeconfig="+c.Kubeconfig,
			"--controllers="+strings.Join(controllers, ","),
			"--service-account-private-key-file="+saKey,
			"--root-ca-file="+ca,
			"--leader-elect=false",
			"--bind-address="+o.Host,
			"--secure-port="+strconv.Itoa(kcmPort),
			"--cert-dir="+filepath.Join(pki, "kcm"),
			// Conformance Deployments and their Pods come and go quickly.
			"--concurrent-deployment-syncs=10",
			"--concurrent-replicaset-syncs=10",
			"--concurrent-service-endpoint-syncs=10",
			"--profiling=false",
		)
		if err != nil {
			return nil, err
		}
		if err := waitHTTP(ctx, kcm, fmt.Sprintf("https://%s/healthz", net.JoinHostPort(o.Host, strconv.Itoa(kcmPort))), nil, 60*time.Second, insecure); err != nil {
			return nil, fmt.Errorf("waiting for kube-controller-manager: %w", err)
		}
	}
	return c, nil
}

// ServiceCIDR is where Services get their ClusterIPs; the "kubernetes"
// Service has the first address, 10.96.0.1.
const ServiceCIDR = "10.96.0.0/16"

// controllers are the kube-controller-manager controllers a cluster runs:
// what makes workload objects turn into Pods and Services into
// EndpointSlices. Node lifecycle and IPAM are absent: the lab registers
// its Nodes, with their Pod CIDRs, itself.
var controllers = []string{
	"deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
	"job-controller", "endpointslice-controller", "serviceaccount-controller", "serviceaccount-token-controller",
	"namespace-controller", "garbage-collector-controller", "root-ca-certificate-publisher-controller",
}

// Stop stops every process, newest first, and waits for them.
func (c *Cluster) Stop() {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(10 * time.Second)
	}
}

// LogDir is where each process's output is written (<name>.log).
func (c *Cluster) LogDir() string { return filepath.Join(c.dir, "logs") }

// freePorts picks n distinct ports on host that nothing answers on. Ports
// are drawn at random from a range above the kernel's ephemeral range
// (32768-60999), so they do not collide with outgoing connections; one
// that accepts a connection is in use and skipped.
func freePorts(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), host string, n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, errors.New("finding free ports: every port tried is in use")
		}
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("finding free ports: %w", err)
		}
		p := 61000 + (int(b[0])<<8|int(b[1]))%4500
		if seen[p] {
			continue
		}
		seen[p] = true
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := dial(dctx, "tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		cancel()
		if err == nil {
			conn.Close()
			continue
		}
		ports = append(ports, p)
	}
	return ports, nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// serviceAccountKeys writes the key pair that signs and verifies service
// account tokens.
func serviceAccountKeys(dir string) (key, pub string, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("generating service account key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("encoding service account key: %w", err)
	}
	key, pub = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600); err != nil {
		return "", "", fmt.Errorf("writing service account key: %w", err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return "", "", fmt.Errorf("writing service account key: %w", err)
	}
	return key, pub, nil
}

func writeKubeconfig(path, host, ca, token string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: local
  context:
    cluster: local
    user: admin
current-context: local
`, host, ca, token)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// waitHTTP polls url until it answers 200, the process exits, or the
// timeout passes.
func waitHTTP(ctx context.Context, p *Process, url string, prep func(*http.Request), timeout time.Duration, clients ...*http.Client) error {
	client := http.DefaultClient
	if len(clients) > 0 {
		client = clients[0]
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if prep != nil {
			prep(req)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %s", url, resp.Status)
		} else {
			last = err
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%v); see %s", p.Name(), p.Err(), p.LogPath())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v; see %s", p.Name(), timeout, last, p.LogPath())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
