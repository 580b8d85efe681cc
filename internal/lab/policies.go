package lab

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/api/v1alpha1"
)

// ErrPolicyRejected means a node's agent rejected a network policy: it
// will not be enforced until it is fixed, so there is nothing to wait for.
var ErrPolicyRejected = errors.New("policy rejected")

// WaitPolicies waits until every node of a lab that enforces policy
// reports, in its NodeProxyStatus, every CiliumNetworkPolicy,
// CiliumClusterwideNetworkPolicy and NetworkPolicy of the cluster as
// Enforced — what `nodemesh status --nodes` summarises. A policy some node
// rejected ends the wait at once with ErrPolicyRejected and the node's
// reason. A lab without policy (Options.NoPolicy) has nothing to wait for.
func WaitPolicies(ctx context.Context, s State, client kubernetes.Interface, dyn dynamic.Interface, timeout time.Duration) error {
	if len(s.Nodes) == 0 || s.Nodes[0].PinDir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		missing, err := policiesMissing(ctx, s, client, dyn)
		if errors.Is(err, ErrPolicyRejected) {
			return err
		}
		if err == nil && missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New(missing)
			}
			return fmt.Errorf("waiting for the nodes to enforce the network policies: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type policyKey struct{ kind, namespace, name string }

func (k policyKey) String() string {
	if k.namespace == "" {
		return k.kind + " " + k.name
	}
	return k.kind + " " + k.namespace + "/" + k.name
}

// policiesMissing names the first policy some node does not enforce yet,
// or "" when every node enforces every policy.
func policiesMissing(ctx context.Context, s State, client kubernetes.Interface, dyn dynamic.Interface) (string, error) {
	var want []policyKey
	for kind, res := range map[string]struct {
		namespaced bool
		list       func() ([]metav1.ObjectMeta, error)
	}{
		"CiliumNetworkPolicy":            {true, dynList(ctx, dyn, ciliumv2.CiliumNetworkPolicyResource)},
		"CiliumClusterwideNetworkPolicy": {false, dynList(ctx, dyn, ciliumv2.CiliumClusterwideNetworkPolicyResource)},
		"NetworkPolicy": {true, func() ([]metav1.ObjectMeta, error) {
			l, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			var out []metav1.ObjectMeta
			for _, p := range l.Items {
				out = append(out, p.ObjectMeta)
			}
			return out, nil
		}},
	} {
		objs, err := res.list()
		if err != nil {
			return "", fmt.Errorf("listing %ss: %w", kind, err)
		}
		for _, o := range objs {
			k := policyKey{kind: kind, name: o.Name}
			if res.namespaced {
				k.namespace = o.Namespace
			}
			want = append(want, k)
		}
	}
	for _, n := range s.Nodes {
		u, err := dyn.Resource(v1alpha1.NodeProxyStatusResource).Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("reading the NodeProxyStatus of %s: %w", n.Name, err)
		}
		var st v1alpha1.NodeProxyStatus
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &st); err != nil {
			return "", fmt.Errorf("decoding the NodeProxyStatus of %s: %w", n.Name, err)
		}
		if st.Status.Policy == nil {
			return n.Name + " reports no policy state yet", nil
		}
		got := map[policyKey]v1alpha1.PolicyEnforcement{}
		for _, p := range st.Status.Policy.Policies {
			got[policyKey{p.Kind, p.Namespace, p.Name}] = p
		}
		for _, k := range want {
			p, ok := got[k]
			switch {
			case !ok && st.Status.Policy.Truncated:
				// Beyond what the report holds: the node's word is missing.
			case !ok:
				return fmt.Sprintf("%s has not compiled %s yet", n.Name, k), nil
			case p.State == "Rejected":
				return "", fmt.Errorf("%w: %s on %s: %s", ErrPolicyRejected, k, n.Name, p.Reason)
			case p.State != "Enforced":
				return fmt.Sprintf("%s on %s is %s %s", k, n.Name, p.State, p.Reason), nil
			}
		}
	}
	return "", nil
}

func dynList(ctx context.Context, dyn dynamic.Interface, res schema.GroupVersionResource) func() ([]metav1.ObjectMeta, error) {
	return func() ([]metav1.ObjectMeta, error) {
		l, err := dyn.Resource(res).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		var out []metav1.ObjectMeta
		for _, u := range l.Items {
			out = append(out, metav1.ObjectMeta{Namespace: u.GetNamespace(), Name: u.GetName()})
		}
		return out, nil
	}
}
