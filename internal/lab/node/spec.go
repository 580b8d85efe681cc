package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PortsEnv is set for every container that declares TCP ports, to
// their numbers, comma-separated: built-in workloads listen on them.
const PortsEnv = "NODEMESH_CONTAINER_PORTS"

// errUnsupported marks a Pod feature the runner does not emulate.
var errUnsupported = errors.New("not supported by the lab")

// Image says how to run one image repository locally.
type Image struct {
	// Repository is the image reference without tag or digest, e.g.
	// "registry.k8s.io/gateway-api/echo-basic"; Docker Hub names may be
	// short ("busybox", "cilium/starwars").
	Repository string
	// Program is the local executable run for it; Args are passed before
	// the container's own args.
	Program string
	Args    []string
	// Commands are the programs the image provides besides its
	// entrypoint, for exec: a command whose first word is a key runs the
	// value (program and leading args) followed by the remaining words.
	Commands map[string][]string
}

// Repository strips the tag and digest from an image reference and
// spells Docker Hub names in full ("busybox:1.36" and
// "docker.io/library/busybox" are both "docker.io/library/busybox"), so
// every spelling of an image finds the same program.
func Repository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	first, rest, found := strings.Cut(image, "/")
	switch {
	case !found:
		return "docker.io/library/" + image
	case first == "localhost" || strings.ContainsAny(first, ".:"):
		if first == "index.docker.io" {
			return Repository("docker.io/" + rest)
		}
		if first == "docker.io" && !strings.Contains(rest, "/") {
			return "docker.io/library/" + rest
		}
		return image
	default:
		return "docker.io/" + image
	}
}

// checkPod rejects Pod features the runner cannot honour, naming the field.
func checkPod(p *corev1.Pod) error {
	switch {
	case p.Spec.HostNetwork:
		return fmt.Errorf("spec.hostNetwork: %w", errUnsupported)
	case len(p.Spec.InitContainers) > 0:
		return fmt.Errorf("spec.initContainers: %w", errUnsupported)
	}
	for i, v := range p.Spec.Volumes {
		if v.Secret == nil && v.ConfigMap == nil && v.EmptyDir == nil && v.Projected == nil {
			return fmt.Errorf("spec.volumes[%d] (%s): this volume type is %w (secret, configMap, projected and emptyDir are)", i, v.Name, errUnsupported)
		}
	}
	for i, c := range p.Spec.Containers {
		if pr := c.ReadinessProbe; pr != nil && pr.TCPSocket == nil && pr.HTTPGet == nil {
			return fmt.Errorf("spec.containers[%d].readinessProbe: only tcpSocket and httpGet probes are %w", i, errUnsupported)
		}
	}
	return nil
}

// program returns what runs for container i (before its args), or why
// nothing can: a command that names a local program runs as is; otherwise
// the image's program does.
func (r *Runner) program(i int, c corev1.Container) (argv []string, reason string, err error) {
	if len(c.Command) > 0 {
		if !r.cfg.LocalCommands {
			return nil, "Unsupported", fmt.Errorf("spec.containers[%d].command: overriding the entrypoint is %w", i, errUnsupported)
		}
		path, err := exec.LookPath(c.Command[0])
		if err != nil {
			return nil, "Unsupported", fmt.Errorf("spec.containers[%d].command: %q is not a program on this machine; "+
				"the lab runs a container's command only when it names a local program", i, c.Command[0])
		}
		return append([]string{path}, c.Command[1:]...), "", nil
	}
	im, ok := r.images[Repository(c.Image)]
	if !ok {
		return nil, "ImageNotRunnable", fmt.Errorf("spec.containers[%d].image: the lab has no program for %s "+
			"(see `nodemesh lab images`; a command naming a local program runs without one)", i, c.Image)
	}
	return append([]string{im.Program}, im.Args...), "", nil
}

// resolvConf renders the Pod's resolv.conf the way the kubelet does for
// its dnsPolicy: ClusterFirst (the default) searches the Pod's namespace,
// svc and the cluster domain through the cluster DNS with ndots:5; None
// uses only spec.dnsConfig; Default would be the node's resolver, and the
// lab's nodes have none, so such a Pod resolves nothing. dnsConfig's
// nameservers, searches and options are added as the kubelet adds them.
func resolvConf(p *corev1.Pod, dns netip.Addr, domain string) []byte {
	var servers, search []string
	opts := map[string]string{}
	var order []string
	setOpt := func(name, value string) {
		if _, ok := opts[name]; !ok {
			order = append(order, name)
		}
		opts[name] = value
	}
	switch p.Spec.DNSPolicy {
	case corev1.DNSNone:
	case corev1.DNSDefault:
	default: // ClusterFirst, ClusterFirstWithHostNet
		servers = []string{dns.String()}
		search = []string{p.Namespace + ".svc." + domain, "svc." + domain, domain}
		setOpt("ndots", "5")
	}
	if dc := p.Spec.DNSConfig; dc != nil {
		servers = append(servers, dc.Nameservers...)
		search = append(search, dc.Searches...)
		for _, o := range dc.Options {
			v := ""
			if o.Value != nil {
				v = *o.Value
			}
			setOpt(o.Name, v)
		}
	}
	var b strings.Builder
	b.WriteString("# written by the nodemesh lab for Pod " + p.Namespace + "/" + p.Name + "\n")
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(order) > 0 {
		b.WriteString("options")
		for _, name := range order {
			if opts[name] != "" {
				b.WriteString(" " + name + ":" + opts[name])
			} else {
				b.WriteString(" " + name)
			}
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// writeVolumes materialises the Pod's volumes under dir/<volume name> and
// returns each volume's directory by name.
func writeVolumes(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, dir string) (map[string]string, error) {
	out := map[string]string{}
	for i, v := range p.Spec.Volumes {
		vd := filepath.Join(dir, v.Name)
		if err := os.MkdirAll(vd, 0o755); err != nil {
			return nil, fmt.Errorf("creating volume %s: %w", v.Name, err)
		}
		out[v.Name] = vd
		var data map[string][]byte
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			s, err := c.CoreV1().Secrets(p.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("spec.volumes[%d] (%s): reading Secret %s: %w", i, v.Name, v.Secret.SecretName, err)
			}
			data, items = s.Data, v.Secret.Items
		case v.ConfigMap != nil:
			cm, err := c.CoreV1().ConfigMaps(p.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("spec.volumes[%d] (%s): reading ConfigMap %s: %w", i, v.Name, v.ConfigMap.Name, err)
			}
			data = map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			for k, b := range cm.BinaryData {
				data[k] = b
			}
			items = v.ConfigMap.Items
		case v.Projected != nil:
			var err error
			if data, err = projected(ctx, c, p, v.Projected); err != nil {
				return nil, fmt.Errorf("spec.volumes[%d] (%s): %w", i, v.Name, err)
			}
		default:
			continue // emptyDir
		}
		files := map[string][]byte{}
		if len(items) == 0 {
			for k, b := range data {
				files[k] = b
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				return nil, fmt.Errorf("spec.volumes[%d] (%s): key %q not found", i, v.Name, it.Key)
			}
			files[it.Path] = b
		}
		for name, b := range files {
			path := filepath.Join(vd, filepath.Clean("/"+name))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, fmt.Errorf("writing volume %s: %w", v.Name, err)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return nil, fmt.Errorf("writing volume %s: %w", v.Name, err)
			}
		}
	}
	return out, nil
}

// pathRewriter maps a container's mount paths to volume directories.
type pathRewriter []struct{ mount, dir string }

func newPathRewriter(c corev1.Container, vols map[string]string) pathRewriter {
	var r pathRewriter
	for _, m := range c.VolumeMounts {
		if d, ok := vols[m.Name]; ok {
			dir := d
			if m.SubPath != "" {
				dir = filepath.Join(d, filepath.Clean("/"+m.SubPath))
			}
			r = append(r, struct{ mount, dir string }{strings.TrimSuffix(m.MountPath, "/"), dir})
		}
	}
	return r
}

func (r pathRewriter) rewrite(s string) string {
	for _, m := range r {
		if s == m.mount || strings.HasPrefix(s, m.mount+"/") {
			return m.dir + s[len(m.mount):]
		}
	}
	return s
}

// env resolves a container's environment.
func env(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, ctr corev1.Container, hostIP string, rw pathRewriter) ([]string, error) {
	out := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + p.Name}
	// Built-in workloads listen on the ports the container declares.
	var ports []string
	for _, cp := range ctr.Ports {
		if cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP {
			ports = append(ports, strconv.Itoa(int(cp.ContainerPort)))
		}
	}
	if len(ports) > 0 {
		out = append(out, PortsEnv+"="+strings.Join(ports, ","))
	}
	for i, e := range ctr.Env {
		field := fmt.Sprintf("spec.containers[%s].env[%d] (%s)", ctr.Name, i, e.Name)
		val := e.Value
		if vf := e.ValueFrom; vf != nil {
			switch {
			case vf.FieldRef != nil:
				switch vf.FieldRef.FieldPath {
				case "metadata.name":
					val = p.Name
				case "metadata.namespace":
					val = p.Namespace
				case "metadata.uid":
					val = string(p.UID)
				case "spec.nodeName":
					val = p.Spec.NodeName
				case "spec.serviceAccountName":
					val = p.Spec.ServiceAccountName
				case "status.podIP":
					val = p.Status.PodIP
				case "status.hostIP":
					val = hostIP
				default:
					return nil, fmt.Errorf("%s: fieldRef %s: %w", field, vf.FieldRef.FieldPath, errUnsupported)
				}
			case vf.SecretKeyRef != nil:
				s, err := c.CoreV1().Secrets(p.Namespace).Get(ctx, vf.SecretKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return nil, fmt.Errorf("%s: reading Secret %s: %w", field, vf.SecretKeyRef.Name, err)
				}
				val = string(s.Data[vf.SecretKeyRef.Key])
			case vf.ConfigMapKeyRef != nil:
				cm, err := c.CoreV1().ConfigMaps(p.Namespace).Get(ctx, vf.ConfigMapKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return nil, fmt.Errorf("%s: reading ConfigMap %s: %w", field, vf.ConfigMapKeyRef.Name, err)
				}
				val = cm.Data[vf.ConfigMapKeyRef.Key]
			default:
				return nil, fmt.Errorf("%s: valueFrom: %w", field, errUnsupported)
			}
		}
		out = append(out, e.Name+"="+rw.rewrite(val))
	}
	return out, nil
}

// projected resolves a projected volume (what the ServiceAccount admission
// plugin adds to every Pod: a bound token, the cluster CA and the
// namespace) into file contents by path.
func projected(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, pv *corev1.ProjectedVolumeSource) (map[string][]byte, error) {
	out := map[string][]byte{}
	for j, src := range pv.Sources {
		switch {
		case src.ServiceAccountToken != nil:
			st := src.ServiceAccountToken
			req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				ExpirationSeconds: st.ExpirationSeconds,
				BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
			}}
			if st.Audience != "" {
				req.Spec.Audiences = []string{st.Audience}
			}
			sa := p.Spec.ServiceAccountName
			if sa == "" {
				sa = "default"
			}
			tok, err := c.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
			if err != nil {
				return nil, fmt.Errorf("sources[%d]: requesting a token for ServiceAccount %s: %w", j, sa, err)
			}
			out[st.Path] = []byte(tok.Status.Token)
		case src.ConfigMap != nil:
			cm, err := c.CoreV1().ConfigMaps(p.Namespace).Get(ctx, src.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				if src.ConfigMap.Optional != nil && *src.ConfigMap.Optional {
					continue
				}
				return nil, fmt.Errorf("sources[%d]: reading ConfigMap %s: %w", j, src.ConfigMap.Name, err)
			}
			for _, it := range src.ConfigMap.Items {
				out[it.Path] = []byte(cm.Data[it.Key])
			}
			if len(src.ConfigMap.Items) == 0 {
				for k, v := range cm.Data {
					out[k] = []byte(v)
				}
			}
		case src.Secret != nil:
			s, err := c.CoreV1().Secrets(p.Namespace).Get(ctx, src.Secret.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("sources[%d]: reading Secret %s: %w", j, src.Secret.Name, err)
			}
			for _, it := range src.Secret.Items {
				out[it.Path] = s.Data[it.Key]
			}
			if len(src.Secret.Items) == 0 {
				for k, v := range s.Data {
					out[k] = v
				}
			}
		case src.DownwardAPI != nil:
			for _, it := range src.DownwardAPI.Items {
				if it.FieldRef == nil {
					return nil, fmt.Errorf("sources[%d]: downwardAPI %s: only fieldRef is %w", j, it.Path, errUnsupported)
				}
				switch it.FieldRef.FieldPath {
				case "metadata.namespace":
					out[it.Path] = []byte(p.Namespace)
				case "metadata.name":
					out[it.Path] = []byte(p.Name)
				case "metadata.uid":
					out[it.Path] = []byte(p.UID)
				default:
					return nil, fmt.Errorf("sources[%d]: downwardAPI fieldRef %s is %w", j, it.FieldRef.FieldPath, errUnsupported)
				}
			}
		default:
			return nil, fmt.Errorf("sources[%d]: this projection is %w", j, errUnsupported)
		}
	}
	return out, nil
}
