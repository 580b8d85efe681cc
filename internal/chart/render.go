package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// Rendered is the output of one `helm template`.
type Rendered struct {
	// Manifest is helm's output as is.
	Manifest []byte
	Objects  []*unstructured.Unstructured
}

// Render runs `helm template <release> <chartDir> --namespace <namespace>`
// with values (written as JSON to valuesFile, which is kept so a reader
// can see what was rendered) and decodes the result. A value the schema
// refuses or a template guard that fails is an error carrying helm's
// message.
func Render(ctx context.Context, helm, chartDir, release, namespace, valuesFile string, values map[string]any) (*Rendered, error) {
	body, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding chart values: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(valuesFile), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(valuesFile), err)
	}
	if err := os.WriteFile(valuesFile, body, 0o644); err != nil {
		return nil, fmt.Errorf("writing chart values: %w", err)
	}
	var stdout, stderr bytes.Buffer
	// The values go through standard input: helm splits a --values
	// argument on commas, which a file's path may hold.
	cmd := exec.CommandContext(ctx, helm, "template", release, chartDir, "--namespace", namespace, "--values", "-")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(body), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("rendering the chart with %s: %w: %s", valuesFile, err, bytes.TrimSpace(stderr.Bytes()))
	}
	objs, err := controlplane.Decode(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("decoding the rendered chart: %w", err)
	}
	return &Rendered{Manifest: stdout.Bytes(), Objects: objs}, nil
}

// PodSpec returns the Pod template of the DaemonSet or Deployment kind/name.
func (r *Rendered) PodSpec(kind, name string) (corev1.PodSpec, error) {
	for _, o := range r.Objects {
		if o.GetKind() != kind || o.GetName() != name {
			continue
		}
		switch kind {
		case "DaemonSet":
			var ds appsv1.DaemonSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds); err != nil {
				return corev1.PodSpec{}, fmt.Errorf("decoding DaemonSet %s: %w", name, err)
			}
			return ds.Spec.Template.Spec, nil
		case "Deployment":
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
				return corev1.PodSpec{}, fmt.Errorf("decoding Deployment %s: %w", name, err)
			}
			return d.Spec.Template.Spec, nil
		default:
			return corev1.PodSpec{}, fmt.Errorf("%s %s: not a DaemonSet or Deployment", kind, name)
		}
	}
	return corev1.PodSpec{}, fmt.Errorf("the rendered chart has no %s %s", kind, name)
}
