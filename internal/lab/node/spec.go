package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// errUnsupported marks a Pod feature the runner does not emulate.
var errUnsupported = errors.New("not supported by the local node runner")

// Image says how to run one image repository locally.
type Image struct {
	// Repository is the image reference without tag or digest, e.g.
	// "registry.k8s.io/gateway-api/echo-basic".
	Repository string
	// Program is the local executable run for it; Args are passed before
	// the container's own args.
	Program string
	Args    []string
}

// repository strips the tag and digest from an image reference.
func repository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
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
		if len(c.Command) > 0 {
			return fmt.Errorf("spec.containers[%d].command: overriding the entrypoint is %w", i, errUnsupported)
		}
		if pr := c.ReadinessProbe; pr != nil && pr.TCPSocket == nil && pr.HTTPGet == nil {
			return fmt.Errorf("spec.containers[%d].readinessProbe: only tcpSocket and httpGet probes are %w", i, errUnsupported)
		}
	}
	return nil
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
