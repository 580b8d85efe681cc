package lab

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodemesh/nodemesh/internal/chart"
)

// The release the lab renders, as `helm install nodemesh charts/nodemesh
// --namespace kube-system` would name it.
const (
	chartRelease   = "nodemesh"
	chartNamespace = "kube-system"
)

// The rendered workloads the lab runs and their containers.
var (
	agentWorkload      = rendered{kind: "DaemonSet", name: chartRelease + "-agent", container: "agent"}
	proxyWorkload      = rendered{kind: "DaemonSet", name: chartRelease + "-proxy", container: "proxy"}
	controllerWorkload = rendered{kind: "Deployment", name: chartRelease + "-controller", container: "controller"}
)

type rendered struct{ kind, name, container string }

// nodeValues are the chart values for one node: what a cluster's operator
// would set for this lab, had it one node (see doc.go, "The chart"), with
// kubeconfig as kubeConfigPath.
func (l *Lab) nodeValues(n Node, kubeconfig string) map[string]any {
	datapath := map[string]any{"enabled": !l.opts.NoPolicy}
	agent := map[string]any{
		"policy":   map[string]any{"enabled": !l.opts.NoPolicy},
		"datapath": datapath,
	}
	if !l.opts.NoPolicy {
		// The datapath on the node's namespace and its addresses (so the
		// agent never reads the machine's): its lab network address and
		// the Pods' gateway on its loopback, the source the kernel picks
		// for the node's own connections to its Pods (the Pod routes name
		// no source, and lo is the first interface with a global
		// address). The uplink is the device traffic from other nodes
		// enters through, so a connection from another node that policy
		// redirects to the proxy is handed over before the IP stack sees
		// it (see package datapath). With a Pod cgroup the agent also
		// translates Services at the socket there: without it a Pod under
		// egress policy could not use a ClusterIP at all (the datapath
		// refuses to judge a flow still addressed to a Service frontend).
		// The chart pins under <bpffsPath>/nodemesh: one bpffsPath per
		// node on the lab's own bpf filesystem.
		datapath["bpffsPath"] = filepath.Join(l.bpffs, n.Name)
		datapath["devices"] = []string{uplink}
		datapath["netnsPath"] = n.NetnsPath
		if n.Cgroup != "" {
			datapath["cgroup"] = n.Cgroup
		}
		agent["nodeIPs"] = []string{n.IP.String(), n.PodCIDR.Addr().Next().String()}
	}
	if l.opts.AgentArgs != nil {
		agent["extraArgs"] = l.opts.AgentArgs(n)
	}
	v := map[string]any{
		"addressPool":    l.opts.AddressPool,
		"stateDir":       n.StateDir,
		"kubeConfigPath": kubeconfig,
		"agent":          agent,
		"controller":     map[string]any{"extraArgs": l.opts.ControllerArgs},
	}
	return mergeValues(v, l.opts.ChartValues)
}

// mergeValues returns base with over laid on it, as helm merges a later
// values file: maps merge key by key, anything else is replaced.
func mergeValues(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = mergeValues(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

// render renders the chart with values into <dir>/chart/<name>/
// (values.json and the manifest, kept for reading).
func (l *Lab) render(ctx context.Context, name string, values map[string]any) (*chart.Rendered, error) {
	dir := filepath.Join(l.Dir, "chart", name)
	r, err := chart.Render(ctx, l.helm, l.chartDir, chartRelease, chartNamespace, filepath.Join(dir, "values.json"), values)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), r.Manifest, 0o644); err != nil {
		return nil, fmt.Errorf("writing the rendered chart: %w", err)
	}
	return r, nil
}

// pod is what kubelet knows of the Pod a container runs in, for the
// downward API.
type pod struct {
	name, namespace, nodeName, serviceAccount, hostIP, podIP string
}

// process is a rendered container as the lab starts it.
type process struct {
	path string
	args []string
	env  []string
}

// containerProcess turns the container of a rendered workload into a
// process the way kubelet would start it: the container's env with the
// downward API resolved from p, then $(VAR) references in command and
// args expanded from that env; the command's program is looked up by
// name in binDir (the lab has no images). The lab shares the machine's
// file system, so every hostPath volume must be mounted at its own path
// (the lab's values make them so); a volume of another kind, an env
// source the lab cannot resolve or a program it does not have is an
// error, never silently dropped. The securityContext is not applied: the
// lab runs everything as root.
func containerProcess(r *chart.Rendered, w rendered, p pod, binDir string) (process, error) {
	spec, err := r.PodSpec(w.kind, w.name)
	if err != nil {
		return process{}, err
	}
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == w.container {
			c = &spec.Containers[i]
		}
	}
	if c == nil {
		return process{}, fmt.Errorf("%s %s has no container %s", w.kind, w.name, w.container)
	}
	where := fmt.Sprintf("%s %s container %s", w.kind, w.name, w.container)
	if len(spec.InitContainers) > 0 {
		return process{}, fmt.Errorf("%s: the lab runs no init containers", where)
	}
	if len(c.EnvFrom) > 0 {
		return process{}, fmt.Errorf("%s: envFrom is not resolved by the lab", where)
	}
	env := map[string]string{}
	var list []string
	for _, e := range c.Env {
		v, err := envValue(e, p, env)
		if err != nil {
			return process{}, fmt.Errorf("%s: env %s: %w", where, e.Name, err)
		}
		env[e.Name] = v
		list = append(list, e.Name+"="+v)
	}
	if err := checkMounts(spec, c); err != nil {
		return process{}, fmt.Errorf("%s: %w", where, err)
	}
	if len(c.Command) == 0 {
		return process{}, fmt.Errorf("%s: no command (the lab has no image entrypoints)", where)
	}
	cmd := make([]string, 0, len(c.Command)+len(c.Args))
	for _, a := range append(append([]string(nil), c.Command...), c.Args...) {
		cmd = append(cmd, expandVars(a, env))
	}
	prog := filepath.Base(cmd[0])
	path := filepath.Join(binDir, prog)
	if !strings.HasPrefix(prog, "nodemesh-") {
		return process{}, fmt.Errorf("%s: command %s: the lab runs only nodemesh programs", where, cmd[0])
	}
	if _, err := os.Stat(path); err != nil {
		return process{}, fmt.Errorf("%s: command %s: %w", where, cmd[0], err)
	}
	// An image's environment gives PATH; nothing else of the lab's own
	// environment leaks in (a KUBECONFIG or NODE_NAME there would hide a
	// flag the chart forgot).
	base := []string{"PATH=" + os.Getenv("PATH")}
	return process{path: path, args: cmd[1:], env: append(base, list...)}, nil
}

// envValue resolves one env entry as kubelet does: a value with $(VAR)
// references to the entries before it, or a downward-API field.
func envValue(e corev1.EnvVar, p pod, before map[string]string) (string, error) {
	if e.ValueFrom == nil {
		return expandVars(e.Value, before), nil
	}
	f := e.ValueFrom.FieldRef
	if f == nil {
		return "", fmt.Errorf("only fieldRef is resolved by the lab")
	}
	v, ok := map[string]string{
		"metadata.name": p.name, "metadata.namespace": p.namespace, "spec.nodeName": p.nodeName,
		"spec.serviceAccountName": p.serviceAccount, "status.hostIP": p.hostIP, "status.podIP": p.podIP,
	}[f.FieldPath]
	if !ok {
		return "", fmt.Errorf("fieldRef %s is not resolved by the lab", f.FieldPath)
	}
	return v, nil
}

// expandVars replaces $(NAME) with env's NAME, as Kubernetes expands
// command, args and env values: a reference to an undefined name stays as
// written, and $$ is a literal $ (so $$(NAME) is the text $(NAME)).
func expandVars(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			ref := s[i : i+3+end]
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(ref)
			}
			i += len(ref) - 1
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// checkMounts refuses what the lab cannot give a container that shares
// the machine's file system: a hostPath mounted elsewhere than its own
// path, a subPath, a volume of another kind. It creates hostPath
// directories of type DirectoryOrCreate, as kubelet does.
func checkMounts(spec corev1.PodSpec, c *corev1.Container) error {
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		switch {
		case !ok:
			return fmt.Errorf("volumeMount %s names no volume", m.Name)
		case v.HostPath == nil:
			return fmt.Errorf("volume %s: only hostPath volumes run in the lab", m.Name)
		case m.SubPath != "" || m.SubPathExpr != "":
			return fmt.Errorf("volumeMount %s: subPath does not run in the lab", m.Name)
		case filepath.Clean(m.MountPath) != filepath.Clean(v.HostPath.Path):
			return fmt.Errorf("volume %s: hostPath %s is mounted at %s; the lab needs them equal", m.Name, v.HostPath.Path, m.MountPath)
		}
		if t := v.HostPath.Type; t != nil && *t == corev1.HostPathDirectoryOrCreate {
			if err := os.MkdirAll(v.HostPath.Path, 0o755); err != nil {
				return fmt.Errorf("volume %s: %w", m.Name, err)
			}
		}
	}
	return nil
}
