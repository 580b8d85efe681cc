package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// ManifestFiles lists what `kubectl apply -f path` would read: a file as
// is, a directory's *.yaml, *.yml and *.json files (not its
// subdirectories) in name order.
func ManifestFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	var out []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				out = append(out, filepath.Join(path, e.Name()))
			}
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("reading manifests: no .yaml, .yml or .json file in %s", path)
	}
	return out, nil
}

// ApplyPaths applies the manifests of every path (see ManifestFiles),
// creating or replacing each object. Like kubectl it goes on after a file
// fails and reports every failure at the end.
func ApplyPaths(ctx context.Context, cfg *rest.Config, paths []string) error {
	var errs []error
	for _, p := range paths {
		files, err := ManifestFiles(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := controlplane.Apply(ctx, cfg, data); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f, err))
			}
		}
	}
	return errors.Join(errs...)
}

// PodSummary is one Pod's placement and state.
type PodSummary struct {
	Namespace, Name, Node, IP string
	Ready                     bool
	// Reason says why a Pod is not Ready (waiting reason, unschedulable).
	Reason string
}

func (p PodSummary) String() string {
	state := "Ready"
	if !p.Ready {
		state = "NotReady"
		if p.Reason != "" {
			state += " (" + p.Reason + ")"
		}
	}
	return fmt.Sprintf("%s/%s\t%s\t%s\t%s", p.Namespace, p.Name, orDash(p.Node), orDash(p.IP), state)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stuck are waiting reasons that do not go away by waiting.
var stuck = map[string]bool{"ImageNotRunnable": true, "Unsupported": true, corev1.PodReasonUnschedulable: true}

// WaitSettled waits until every workload outside kube-system has created
// its Pods and every Pod is Ready or stuck (an image the lab cannot run, a
// feature it does not emulate, no node that fits), and returns the Pods.
// It gives up after timeout, returning the Pods as they are and an error.
func WaitSettled(ctx context.Context, client kubernetes.Interface, timeout time.Duration) ([]PodSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pods, pending, err := settled(ctx, client)
		if err == nil && pending == "" {
			return pods, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New(pending)
			}
			return pods, fmt.Errorf("waiting for Pods to be ready: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func settled(ctx context.Context, client kubernetes.Interface) ([]PodSummary, string, error) {
	deps, err := client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", err
	}
	for _, d := range deps.Items {
		if d.Namespace == metav1.NamespaceSystem {
			continue
		}
		if want := replicas(d.Spec.Replicas); d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas < want {
			return nil, fmt.Sprintf("Deployment %s/%s has %d of %d Pods", d.Namespace, d.Name, d.Status.UpdatedReplicas, want), nil
		}
	}
	sets, err := client.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", err
	}
	for _, s := range sets.Items {
		if s.Namespace == metav1.NamespaceSystem {
			continue
		}
		if err := statefulSetPending(s); err != "" {
			return nil, err, nil
		}
	}
	list, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", err
	}
	var out []PodSummary
	pending := ""
	for _, p := range list.Items {
		if p.Namespace == metav1.NamespaceSystem || p.DeletionTimestamp != nil {
			continue
		}
		s := summarize(&p)
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			s.Reason = string(p.Status.Phase)
			out = append(out, s)
			continue
		}
		out = append(out, s)
		if !s.Ready && !stuck[strings.SplitN(s.Reason, ":", 2)[0]] && pending == "" {
			pending = fmt.Sprintf("Pod %s/%s is not ready", p.Namespace, p.Name)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out, pending, nil
}

func statefulSetPending(s appsv1.StatefulSet) string {
	if want := replicas(s.Spec.Replicas); s.Status.ObservedGeneration < s.Generation || s.Status.ReadyReplicas < want {
		// StatefulSets create Pods one by one, each after the previous is
		// Ready; a stuck Pod stops it, which the Pod check reports.
		if s.Status.Replicas < want && s.Status.Replicas == s.Status.ReadyReplicas {
			return fmt.Sprintf("StatefulSet %s/%s has %d of %d Pods", s.Namespace, s.Name, s.Status.Replicas, want)
		}
	}
	return ""
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

func summarize(p *corev1.Pod) PodSummary {
	s := PodSummary{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, IP: p.Status.PodIP}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			s.Ready = c.Status == corev1.ConditionTrue
		}
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			s.Reason = c.Reason + ": " + c.Message
		}
	}
	for _, c := range p.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil && w.Reason != "" && s.Reason == "" {
			s.Reason = w.Reason + ": " + w.Message
		}
	}
	return s
}
