package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/internal/chart"
	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// Ports of per-node programs, on each node namespace's loopback.
const (
	kubeProxyHealthPort  = 10256
	kubeProxyMetricsPort = 10249
)

// kubeProxyConfig is kube-proxy's configuration for one node: iptables
// mode (the kernel's nf_tables through iptables-nft works inside a
// namespace), the cluster CIDR so traffic from outside the Pod network is
// masqueraded, and every conntrack knob at 0 so kube-proxy leaves the
// machine-wide conntrack table alone (a namespace cannot set it anyway).
// minSyncPeriod 0 applies Service changes at once: a lab has few.
const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %q
hostnameOverride: %q
bindAddress: %q
healthzBindAddress: "127.0.0.1:%d"
metricsBindAddress: "127.0.0.1:%d"
mode: iptables
clusterCIDR: %q
detectLocalMode: ClusterCIDR
iptables:
  minSyncPeriod: 0s
  syncPeriod: 30s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`

func (l *Lab) startKubeProxy(n Node, nn *network.Node) error {
	if err := os.MkdirAll(n.StateDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", n.StateDir, err)
	}
	cfg := filepath.Join(n.StateDir, "kube-proxy.yaml")
	body := fmt.Sprintf(kubeProxyConfig, l.LabKubeconfig, n.Name, n.IP.String(), kubeProxyHealthPort, kubeProxyMetricsPort, network.ClusterCIDR.String())
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return fmt.Errorf("writing kube-proxy configuration: %w", err)
	}
	_, err := l.cluster.Run("kube-proxy-"+n.Name, nn.Command(context.Background(), l.Binaries.KubeProxy, "--config="+cfg, "--v=1"))
	return err
}

// startMesh renders the chart for every node and starts what it
// renders: nodemesh-controller in the control-plane namespace,
// nodemesh-agent and nodemesh-proxy in every node's namespace, each with
// its container's command, args and env (containerProcess). The chart's
// ServiceAccounts and RBAC are installed from the first render, and the
// agents and the controller reach the API server with tokens of their
// own ServiceAccounts (writeCredentials), so they run with exactly the
// chart's roles. The controller comes from a render of its own: the
// chart has one kubeConfigPath, and the controller's names another
// ServiceAccount's credentials than the agents'.
func (l *Lab) startMesh(ctx, runCtx context.Context) error {
	agentKubeconfig, controllerKubeconfig := l.componentKubeconfig("agent"), l.componentKubeconfig("controller")
	for i, n := range l.Nodes {
		r, err := l.render(ctx, n.Name, l.nodeValues(n, agentKubeconfig))
		if err != nil {
			return err
		}
		host := pod{namespace: chartNamespace, nodeName: n.Name, hostIP: n.IP.String(), podIP: n.IP.String()}
		if i == 0 {
			if err := l.installChartObjects(ctx, r); err != nil {
				return err
			}
			if err := l.writeCredentials(ctx, runCtx, r, agentWorkload, agentKubeconfig); err != nil {
				return err
			}
			rc, err := l.render(ctx, "controller", l.nodeValues(n, controllerKubeconfig))
			if err != nil {
				return err
			}
			if err := l.writeCredentials(ctx, runCtx, rc, controllerWorkload, controllerKubeconfig); err != nil {
				return err
			}
			// One controller: the Deployment's Pod, on the control plane.
			cp := pod{name: chartRelease + "-controller-0", namespace: chartNamespace, serviceAccount: chartRelease + "-controller",
				hostIP: network.ControlPlaneIP.String(), podIP: network.ControlPlaneIP.String()}
			if err := l.run(rc, controllerWorkload, cp, "nodemesh-controller", l.Network.ControlPlane.Command); err != nil {
				return err
			}
		}
		nn := l.Network.Nodes[i]
		agent, proxy := host, host
		agent.name, agent.serviceAccount = chartRelease+"-agent-"+n.Name, chartRelease+"-agent"
		proxy.name, proxy.serviceAccount = chartRelease+"-proxy-"+n.Name, chartRelease+"-proxy"
		ap, err := containerProcess(r, agentWorkload, agent, l.opts.BinDir)
		if err != nil {
			return err
		}
		if n.PinDir != "" && flagValue(ap.args, "datapath-pin-dir") != n.PinDir {
			return fmt.Errorf("the rendered agent of %s pins at %q, not %s", n.Name, flagValue(ap.args, "datapath-pin-dir"), n.PinDir)
		}
		if err := l.start("nodemesh-agent-"+n.Name, ap, nn.Command); err != nil {
			return err
		}
		if err := l.run(r, proxyWorkload, proxy, "nodemesh-proxy-"+n.Name, nn.Command); err != nil {
			return err
		}
	}
	return nil
}

// run starts the container of w as name.
func (l *Lab) run(r *chart.Rendered, w rendered, p pod, name string, command func(context.Context, string, ...string) *exec.Cmd) error {
	proc, err := containerProcess(r, w, p, l.opts.BinDir)
	if err != nil {
		return err
	}
	return l.start(name, proc, command)
}

func (l *Lab) start(name string, p process, command func(context.Context, string, ...string) *exec.Cmd) error {
	cmd := command(context.Background(), p.path, p.args...)
	cmd.Env = p.env
	_, err := l.cluster.Run(name, cmd)
	return err
}

// flagValue returns the value of the last --name=value in args ("" when
// absent): the one Go's flag package keeps.
func flagValue(args []string, name string) string {
	v := ""
	for _, a := range args {
		if rest, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v = rest
		}
	}
	return v
}

// waitNode waits until the node's runner registered it Ready.
func (l *Lab) waitNode(ctx context.Context, name string) error {
	for {
		n, err := l.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		if err := l.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for Node %s to be Ready: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitMesh waits until the node's agent reports, in its NodeProxyStatus,
// that the node's proxy is connected: the agent reached the API server
// and serves xDS, and the proxy reached the agent. (A proxy's /ready
// would say more, but it stays 503 until the first configuration with
// resources in it, and an empty cluster has none.)
func (l *Lab) waitMesh(ctx context.Context, nodeName string) error {
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		return err
	}
	var last string
	for {
		u, err := dyn.Resource(v1alpha1.NodeProxyStatusResource).Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil {
			var st v1alpha1.NodeProxyStatus
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &st); err == nil {
				for _, p := range st.Status.Proxies {
					if p.Connected {
						return nil
					}
				}
				last = fmt.Sprintf("proxies %+v", st.Status.Proxies)
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for nodemesh on %s (%s; see %s): %w", nodeName, last,
				filepath.Join(l.LogDir(), "nodemesh-agent-"+nodeName+".log"), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitServiceAccount waits for kube-controller-manager to have created
// the default namespace's ServiceAccount: until then the API server
// refuses Pods there.
func (l *Lab) waitServiceAccount(ctx context.Context) error {
	for {
		_, err := l.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the default ServiceAccount: %w", errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitHTTP polls url, dialled with dial, until it answers 200.
func waitHTTP(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), url, logPath string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
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
		case <-ctx.Done():
			return fmt.Errorf("%v (see %s): %w", last, logPath, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
