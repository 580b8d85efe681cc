package gateway

import (
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestBackendTLSFollowsConfigMap: the incremental Translator notices a
// BackendTLSPolicy's ConfigMap changing, emptied and restored (the
// conformance suite's reconcile test): the cluster's CA bundle follows
// it, and an unusable bundle fails the backend instead of connecting
// unverified.
func TestBackendTLSFollowsConfigMap(t *testing.T) {
	in := filepath.Join("testdata", "backendtlspolicy", "backendtlspolicy.in.yaml")
	snap := loadCase(t, in)
	opts := Options{Addresses: testAddresses(t, snap, true)}
	x := NewTranslator()
	valid := func(r *Result) *ir.Cluster {
		i := slices.IndexFunc(r.Config.Clusters, func(c *ir.Cluster) bool { return c.Name == "service/default/valid/443" })
		if i < 0 {
			return nil
		}
		return r.Config.Clusters[i]
	}
	first := checkSame(t, "first", x, snap, opts)
	if c := valid(first); c == nil || c.UpstreamTLS == nil {
		t.Fatalf("the valid policy's cluster has no upstream TLS: %+v", c)
	}
	caIdx := slices.IndexFunc(snap.ConfigMaps, func(c *corev1.ConfigMap) bool { return c.Name == "ca" })
	withCA := func(data map[string]string) *Result {
		edited := *snap
		edited.ConfigMaps = slices.Clone(snap.ConfigMaps)
		cm := snap.ConfigMaps[caIdx].DeepCopy()
		cm.Data = data
		edited.ConfigMaps[caIdx] = cm
		return checkSame(t, "edited", x, &edited, opts)
	}
	if c := valid(withCA(map[string]string{"ca.crt": ""})); c != nil {
		t.Fatalf("an empty ca.crt still yields a cluster: %+v", c)
	}
	second := checkSame(t, "restored", x, snap, opts)
	if c := valid(second); c == nil || string(c.UpstreamTLS.TrustedCA) != snap.ConfigMaps[caIdx].Data["ca.crt"] {
		t.Fatalf("the restored ConfigMap's bundle is not on the cluster: %+v", c)
	}
	for _, p := range second.Policies {
		if p.Key.Name == "valid" && p.Status.Ancestors[0].Conditions[0].Reason != "Accepted" {
			t.Fatalf("restored policy: %+v", p.Status)
		}
	}
}

// TestBackendTLSSystemCAs: wellKnownCACertificates System trusts the
// bundle the caller read from the host, and is refused without one.
func TestBackendTLSSystemCAs(t *testing.T) {
	in := filepath.Join("testdata", "backendtlspolicy", "backendtlspolicy.in.yaml")
	snap := loadCase(t, in)
	caIdx := slices.IndexFunc(snap.ConfigMaps, func(c *corev1.ConfigMap) bool { return c.Name == "ca" })
	bundle := []byte(snap.ConfigMaps[caIdx].Data["ca.crt"])
	system := func(r *Result) (*ir.Cluster, string) {
		var reason string
		for _, p := range r.Policies {
			if p.Key.Name == "system" {
				reason = p.Status.Ancestors[0].Conditions[0].Reason
			}
		}
		i := slices.IndexFunc(r.Config.Clusters, func(c *ir.Cluster) bool { return c.Name == "service/default/system/443" })
		if i < 0 {
			return nil, reason
		}
		return r.Config.Clusters[i], reason
	}
	x := NewTranslator()
	opts := Options{Addresses: testAddresses(t, snap, true)}
	if cl, reason := system(checkSame(t, "without", x, snap, opts)); cl != nil || reason != "Invalid" {
		t.Fatalf("without system CAs: cluster %+v, Accepted reason %q; want none and Invalid", cl, reason)
	}
	opts.SystemCAs = bundle
	cl, reason := system(checkSame(t, "with", x, snap, opts))
	if cl == nil || cl.UpstreamTLS == nil || string(cl.UpstreamTLS.TrustedCA) != string(bundle) || reason != "Accepted" {
		t.Fatalf("with system CAs: cluster %+v, Accepted reason %q; want the bundle and Accepted", cl, reason)
	}
}
