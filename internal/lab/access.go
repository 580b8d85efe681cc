package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodemesh/nodemesh/internal/chart"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// installedKinds are the kinds of the rendered chart the lab installs
// (see doc.go, "The chart"): those that decide what its components may
// do, and the IngressClass, which decides which Ingresses are served.
// The workloads are run as processes instead; the CRDs are installed
// with the control plane.
var installedKinds = map[string]bool{
	"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true,
	"IngressClass": true,
}

// tokenLifetime is how long a component's token is valid. An hour, like
// the tokens kubelet projects into Pods: long next to a test, short
// enough that the refresh (at 80 % of it, as kubelet does) runs in a lab
// that stays up.
const tokenLifetime = time.Hour

// installChartObjects applies the ServiceAccounts, roles, bindings and
// IngressClass of the rendered chart, as `helm install` would.
func (l *Lab) installChartObjects(ctx context.Context, r *chart.Rendered) error {
	var objs []*unstructured.Unstructured
	for _, o := range r.Objects {
		if installedKinds[o.GetKind()] {
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 {
		return fmt.Errorf("the rendered chart has no ServiceAccounts or roles")
	}
	if err := controlplane.ApplyObjects(ctx, l.Config, objs); err != nil {
		return fmt.Errorf("installing the chart's ServiceAccounts, RBAC and IngressClass: %w", err)
	}
	return nil
}

// componentKubeconfig is where the kubeconfig of a component (agent,
// controller) is written: the chart's kubeConfigPath for that component's
// render. Its token file is beside it.
func (l *Lab) componentKubeconfig(component string) string {
	return filepath.Join(l.Dir, "cluster", "serviceaccounts", component, "kubeconfig")
}

// writeCredentials gives the workload w of r what kubelet would give its
// Pod: a token of the ServiceAccount its Pod template names, from the
// TokenRequest API, in a kubeconfig at path (a process of the lab reads
// it through --kubeconfig where a Pod would read its projected token).
// The token file is replaced at 80 % of its lifetime until runCtx ends;
// client-go rereads a kubeconfig's tokenFile within a minute. A Pod
// template that opts out of a token (the proxy's) gets none: asking for
// one is an error.
func (l *Lab) writeCredentials(ctx, runCtx context.Context, r *chart.Rendered, w rendered, path string) error {
	spec, err := r.PodSpec(w.kind, w.name)
	if err != nil {
		return err
	}
	sa := spec.ServiceAccountName
	if sa == "" {
		return fmt.Errorf("%s %s names no ServiceAccount", w.kind, w.name)
	}
	if spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken {
		return fmt.Errorf("%s %s does not mount a ServiceAccount token", w.kind, w.name)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	tokenFile := filepath.Join(filepath.Dir(path), "token")
	exp, err := l.writeToken(ctx, sa, tokenFile)
	if err != nil {
		return err
	}
	if err := writeTokenKubeconfig(path, l.cluster.Server, l.cluster.CAFile, tokenFile, chartNamespace+":"+sa); err != nil {
		return err
	}
	l.goRun("token of ServiceAccount "+sa, func() error {
		for {
			refresh := time.Until(exp) * 4 / 5
			select {
			case <-runCtx.Done():
				return nil
			case <-time.After(refresh):
			}
			next, err := l.writeToken(runCtx, sa, tokenFile)
			if err != nil {
				if runCtx.Err() != nil {
					return nil
				}
				// The current token still holds for a fifth of its
				// lifetime: retry well within it.
				l.log.Warn("refreshing a ServiceAccount token", "serviceAccount", sa, "err", err)
				exp = time.Now().Add(10 * time.Second)
				continue
			}
			exp = next
		}
	})
	return nil
}

// writeToken requests a token of the ServiceAccount sa in the chart's
// namespace and replaces tokenFile with it (atomically: a reader sees the
// old token or the new one). It returns when the token expires.
func (l *Lab) writeToken(ctx context.Context, sa, tokenFile string) (time.Time, error) {
	secs := int64(tokenLifetime / time.Second)
	tok, err := l.Client.CoreV1().ServiceAccounts(chartNamespace).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", chartNamespace, sa, err)
	}
	tmp := tokenFile + ".new"
	if err := os.WriteFile(tmp, []byte(tok.Status.Token), 0o600); err != nil {
		return time.Time{}, fmt.Errorf("writing the token of %s: %w", sa, err)
	}
	if err := os.Rename(tmp, tokenFile); err != nil {
		return time.Time{}, fmt.Errorf("writing the token of %s: %w", sa, err)
	}
	return tok.Status.ExpirationTimestamp.Time, nil
}

// writeTokenKubeconfig writes a kubeconfig whose user reads its bearer
// token from tokenFile.
func writeTokenKubeconfig(path, server, caFile, tokenFile, user string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %q
  user:
    tokenFile: %s
contexts:
- name: lab
  context:
    cluster: lab
    user: %q
current-context: lab
`, server, caFile, user, tokenFile, user)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

// The API server's refusal of a request of a ServiceAccount its roles do
// not allow reads `<resource> is forbidden: User
// "system:serviceaccount:<ns>:<name>" cannot <verb> resource ...`; a log
// line holds it as is (client-go) or with the quotes escaped (an error
// value in a log/slog text line), so both parts are looked for apart.
const (
	forbiddenMarker = "is forbidden: User "
	forbiddenUser   = "system:serviceaccount:"
)

// Forbidden returns the lines of the mesh's logs (nodemesh-agent-*,
// nodemesh-controller) where the API server refused the component a
// request: a verb or resource the code uses that the chart's roles lack.
// ForTest fails every lab test that saw one, so each exercises the
// chart's RBAC.
func (l *Lab) Forbidden() ([]string, error) {
	logs, err := filepath.Glob(filepath.Join(l.LogDir(), "nodemesh-*.log"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range logs {
		body, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		for _, line := range strings.Split(string(body), "\n") {
			if i := strings.Index(line, forbiddenMarker); i >= 0 && strings.Contains(line[i:], forbiddenUser) {
				out = append(out, filepath.Base(f)+": "+line)
			}
		}
	}
	return out, nil
}
