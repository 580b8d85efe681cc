package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// ErrNoPolicySource is returned by Start when the API server cannot serve
// what network policy needs (a kind not installed, or not readable with
// the agent's credentials): enforcing an empty policy instead would be a
// silent no-op.
var ErrNoPolicySource = errors.New("the API server does not serve what network policy needs")

// WithPolicy makes the provider also watch what network policy reads:
// Pods and Nodes of the whole cluster, NetworkPolicies, and the cilium.io/v2
// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy kinds (through
// dyn, since they are custom resources).
//
// WithPolicy implies WithEnvoyConfigs, and makes the Envoy config kinds
// required: Start fails when they cannot be listed, as for the policy
// kinds.
func WithPolicy(dyn dynamic.Interface) Option {
	return func(p *Provider) {
		if p.policy == nil {
			p.policy = newPolicyWatch(dyn)
		}
		p.policy.dyn, p.policy.policyKinds = dyn, true
	}
}

// WithEnvoyConfigs makes the provider watch the cilium.io/v2
// CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig kinds (through dyn)
// without network policy. Without WithPolicy they are optional, as the
// optional Gateway API kinds are (optional.go): a cluster without their
// CRDs runs Gateways and Ingresses as before, and the kinds are watched
// once their CRDs appear.
func WithEnvoyConfigs(dyn dynamic.Interface) Option {
	return func(p *Provider) {
		if p.policy == nil {
			p.policy = newPolicyWatch(dyn)
		}
	}
}

func newPolicyWatch(dyn dynamic.Interface) *policyWatch {
	return &policyWatch{dyn: dyn, lastGood: map[types.UID]any{}}
}

// policyWatch is the cilium.io half of the provider: the policy kinds
// (with WithPolicy) and the Envoy config kinds.
type policyWatch struct {
	dyn     dynamic.Interface
	factory dynamicinformer.DynamicSharedInformerFactory
	// policyKinds is set by WithPolicy; without it only the Envoy config
	// kinds are watched, as optional kinds (cecKind, ccecKind).
	policyKinds bool
	cecKind     *optionalKind
	ccecKind    *optionalKind

	pods  func() ([]*corev1.Pod, error)
	nodes func() ([]*corev1.Node, error)
	knps  func() ([]*networkingv1.NetworkPolicy, error)
	cidrs func() ([]*networkingv1.ServiceCIDR, error)
	cnps  cache.SharedIndexInformer
	ccnps cache.SharedIndexInformer
	// cecs and ccecs are the Envoy config kinds (mesh/envoyconfig).
	cecs  cache.SharedIndexInformer
	ccecs cache.SharedIndexInformer

	mu sync.Mutex
	// lastGood is the last version of every cilium.io object that
	// decoded, by UID: a version that does not decode leaves it in force.
	lastGood map[types.UID]any
	problems []string
}

func (p *Provider) setupPolicy(add func(cache.SharedIndexInformer, func(old, cur any) bool)) {
	w := p.policy
	w.factory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(w.dyn, 0, metav1.NamespaceAll, nil)
	if w.policyKinds {
		p.setupPolicyKinds(add)
	}
	cec := func() cache.SharedIndexInformer {
		return w.informer(ciliumv2.CiliumEnvoyConfigResource, func(u *unstructured.Unstructured) (any, error) {
			return decodeEnvoyConfig(u, &ciliumv2.CiliumEnvoyConfig{})
		})
	}
	ccec := func() cache.SharedIndexInformer {
		return w.informer(ciliumv2.CiliumClusterwideEnvoyConfigResource, func(u *unstructured.Unstructured) (any, error) {
			return decodeEnvoyConfig(u, &ciliumv2.CiliumClusterwideEnvoyConfig{})
		})
	}
	if w.policyKinds {
		// Required (preflight checked them): synced with everything else.
		w.cecs, w.ccecs = cec(), ccec()
		add(w.cecs, specChanged)
		add(w.ccecs, specChanged)
		return
	}
	// Optional: an informer is created (and its factory started) only
	// once discovery lists the kind; until then the kind is empty.
	start := func(stop <-chan struct{}) { w.factory.Start(stop) }
	w.cecKind = &optionalKind{kind: "CiliumEnvoyConfig", groupVersion: ciliumv2.SchemeGroupVersion.String(),
		resource: ciliumv2.CiliumEnvoyConfigResource.Resource, informer: onceInformer(cec, &w.cecs), start: start}
	w.ccecKind = &optionalKind{kind: "CiliumClusterwideEnvoyConfig", groupVersion: ciliumv2.SchemeGroupVersion.String(),
		resource: ciliumv2.CiliumClusterwideEnvoyConfigResource.Resource, informer: onceInformer(ccec, &w.ccecs), start: start}
	p.optional.kinds = append(p.optional.kinds, w.cecKind, w.ccecKind)
}

// onceInformer creates an informer on first call, keeps it in *dst, and
// returns it on every call.
func onceInformer(create func() cache.SharedIndexInformer, dst *cache.SharedIndexInformer) func() cache.SharedIndexInformer {
	var once sync.Once
	return func() cache.SharedIndexInformer {
		once.Do(func() { *dst = create() })
		return *dst
	}
}

// informer creates the dynamic informer of a cilium.io kind, decoding
// objects into their typed form as they enter the cache. The caller
// registers its change handler.
func (w *policyWatch) informer(gvr schema.GroupVersionResource, decode func(*unstructured.Unstructured) (any, error)) cache.SharedIndexInformer {
	inf := w.factory.ForResource(gvr).Informer()
	_ = inf.SetTransform(func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil // a tombstone
		}
		u.SetManagedFields(nil)
		typed, err := decode(u)
		if err != nil {
			// Kept as is; Snapshot reports it and keeps the last good
			// version. Failing the transform would stall the informer.
			return u, nil
		}
		w.mu.Lock()
		w.lastGood[u.GetUID()] = typed
		w.mu.Unlock()
		return typed, nil
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if m, ok := obj.(metav1.Object); ok {
			w.mu.Lock()
			delete(w.lastGood, m.GetUID())
			w.mu.Unlock()
		}
	}})
	return inf
}

// setupPolicyKinds sets up what network policy reads.
func (p *Provider) setupPolicyKinds(add func(cache.SharedIndexInformer, func(old, cur any) bool)) {
	w := p.policy
	core := p.coreFactory.Core().V1()
	pods, nodes := core.Pods(), core.Nodes()
	knps := p.coreFactory.Networking().V1().NetworkPolicies()
	w.pods = func() ([]*corev1.Pod, error) { return pods.Lister().List(labels.Everything()) }
	w.nodes = func() ([]*corev1.Node, error) { return nodes.Lister().List(labels.Everything()) }
	w.knps = func() ([]*networkingv1.NetworkPolicy, error) { return knps.Lister().List(labels.Everything()) }
	// The Service ranges: the datapath drops what a Pod under egress
	// enforcement sends into them untranslated.
	cidrs := p.coreFactory.Networking().V1().ServiceCIDRs()
	w.cidrs = func() ([]*networkingv1.ServiceCIDR, error) { return cidrs.Lister().List(labels.Everything()) }
	add(pods.Informer(), podChanged)
	// Only a Node's existence, addresses and annotations (its ingress
	// address) matter (see Snapshot); the
	// rest of its status is rewritten every few seconds by its kubelet.
	add(nodes.Informer(), func(old, cur any) bool { return uidChanged(old, cur) || nodeAddressesChanged(old, cur) })
	add(knps.Informer(), specChanged)
	add(cidrs.Informer(), specChanged)

	// Status-only writes (the Valid condition, ours included) do not
	// change what is enforced.
	w.cnps = w.informer(ciliumv2.CiliumNetworkPolicyResource, func(u *unstructured.Unstructured) (any, error) {
		return decodeCilium(u, &ciliumv2.CiliumNetworkPolicy{})
	})
	add(w.cnps, specChanged)
	w.ccnps = w.informer(ciliumv2.CiliumClusterwideNetworkPolicyResource, func(u *unstructured.Unstructured) (any, error) {
		return decodeCilium(u, &ciliumv2.CiliumClusterwideNetworkPolicy{})
	})
	add(w.ccnps, specChanged)
}

// podChanged ignores resyncs and the status churn that cannot change
// policy: only labels, node, addresses (the host's too: mutual
// authentication dials it), phase, service account, named
// ports and host networking count.
func podChanged(old, cur any) bool {
	o, ok1 := old.(*corev1.Pod)
	c, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	if o.ResourceVersion == c.ResourceVersion {
		return false
	}
	if o.UID != c.UID || o.Spec.NodeName != c.Spec.NodeName || o.Status.PodIP != c.Status.PodIP || o.Status.HostIP != c.Status.HostIP ||
		o.Status.Phase != c.Status.Phase || o.Spec.ServiceAccountName != c.Spec.ServiceAccountName ||
		o.Spec.HostNetwork != c.Spec.HostNetwork || len(o.Status.PodIPs) != len(c.Status.PodIPs) ||
		!equalStringMaps(o.Labels, c.Labels) {
		return true
	}
	for i := range o.Status.PodIPs {
		if o.Status.PodIPs[i] != c.Status.PodIPs[i] {
			return true
		}
	}
	// Container ports are immutable in a Pod; nothing else is read.
	return false
}

func equalStringMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// nodeAddressesChanged says whether a Node's status.addresses changed
// (they are remote-node addresses on the other nodes).
func nodeAddressesChanged(old, cur any) bool {
	o, ok1 := old.(*corev1.Node)
	c, ok2 := cur.(*corev1.Node)
	if !ok1 || !ok2 || len(o.Status.Addresses) != len(c.Status.Addresses) {
		return true
	}
	// The ingress address (model.IngressIPAnnotation) is an address too.
	if !maps.Equal(o.Annotations, c.Annotations) {
		return true
	}
	for i := range o.Status.Addresses {
		if o.Status.Addresses[i] != c.Status.Addresses[i] {
			return true
		}
	}
	return false
}

func uidChanged(old, cur any) bool {
	o, ok1 := old.(metav1.Object)
	c, ok2 := cur.(metav1.Object)
	return !ok1 || !ok2 || o.GetUID() != c.GetUID()
}

// decodeCilium turns an API server object into its typed form. The rule
// part (spec, specs) is decoded strictly, as the file provider does: a
// field nodemesh does not know could narrow what the policy allows, so
// ignoring it could open endpoints up; an API server running Cilium's own
// CRDs (or one with unknown fields preserved) can hold such fields.
// Metadata and status are decoded leniently (other writers may add status
// fields).
func decodeCilium[T any](u *unstructured.Unstructured, out *T) (*T, error) {
	js, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", u.GetKind(), objName(u), err)
	}
	if err := json.Unmarshal(js, out); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", u.GetKind(), objName(u), err)
	}
	rules := map[string]any{}
	for _, f := range []string{"spec", "specs"} {
		if v, ok := u.Object[f]; ok {
			rules[f] = v
		}
	}
	rj, err := json.Marshal(rules)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", u.GetKind(), objName(u), err)
	}
	var strict struct {
		Spec  *ciliumv2.Rule `json:"spec,omitempty"`
		Specs ciliumv2.Rules `json:"specs,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(rj))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&strict); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", u.GetKind(), objName(u), err)
	}
	return out, nil
}

func objName(m metav1.Object) string {
	if m.GetNamespace() == "" {
		return m.GetName()
	}
	return m.GetNamespace() + "/" + m.GetName()
}

// preflight checks, before any informer starts, that every policy source
// can be listed: an informer on a kind the API server does not serve, or
// that the agent may not read, would never sync and the agent would hang
// without saying why.
func (p *Provider) preflight(ctx context.Context) error {
	one := metav1.ListOptions{Limit: 1}
	checks := []struct {
		what string
		list func() error
	}{
		{"Pods", func() error { _, err := p.core.CoreV1().Pods("").List(ctx, one); return err }},
		{"Nodes", func() error { _, err := p.core.CoreV1().Nodes().List(ctx, one); return err }},
		{"NetworkPolicies", func() error { _, err := p.core.NetworkingV1().NetworkPolicies("").List(ctx, one); return err }},
		{"ServiceCIDRs (networking.k8s.io/v1, Kubernetes 1.33+)", func() error {
			_, err := p.core.NetworkingV1().ServiceCIDRs().List(ctx, one)
			return err
		}},
		{"CiliumNetworkPolicies (cilium.io/v2; install the CRDs)", func() error {
			_, err := p.policy.dyn.Resource(ciliumv2.CiliumNetworkPolicyResource).List(ctx, one)
			return err
		}},
		{"CiliumClusterwideNetworkPolicies (cilium.io/v2; install the CRDs)", func() error {
			_, err := p.policy.dyn.Resource(ciliumv2.CiliumClusterwideNetworkPolicyResource).List(ctx, one)
			return err
		}},
		{"CiliumEnvoyConfigs (cilium.io/v2; install the CRDs)", func() error {
			_, err := p.policy.dyn.Resource(ciliumv2.CiliumEnvoyConfigResource).List(ctx, one)
			return err
		}},
		{"CiliumClusterwideEnvoyConfigs (cilium.io/v2; install the CRDs)", func() error {
			_, err := p.policy.dyn.Resource(ciliumv2.CiliumClusterwideEnvoyConfigResource).List(ctx, one)
			return err
		}},
	}
	var errs []error
	for _, c := range checks {
		if err := c.list(); err != nil {
			if ctx.Err() != nil {
				return nil // shutting down; Start sees the context
			}
			errs = append(errs, fmt.Errorf("listing %s: %w", c.what, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrNoPolicySource, errors.Join(errs...))
	}
	return nil
}

// fillPolicy adds the policy kinds and Pods to s. Pods bound to a node
// that has no Node object are left out: their node is gone (the Pod
// garbage collector deletes them later), so their addresses no longer
// stand for them and must not keep ipcache rows on the other nodes.
func (p *Provider) fillPolicy(s *input.Snapshot) {
	w := p.policy
	var problems []string
	if w.policyKinds {
		nodes := list(p.log, "Node", w.nodes)
		known := make(map[string]bool, len(nodes))
		for _, n := range nodes {
			known[n.Name] = true
		}
		s.Nodes = nodes
		for _, pod := range list(p.log, "Pod", w.pods) {
			if pod.Spec.NodeName != "" && !known[pod.Spec.NodeName] {
				continue
			}
			s.Pods = append(s.Pods, pod)
		}
		s.NetworkPolicies = list(p.log, "NetworkPolicy", w.knps)
		s.ServiceCIDRs = list(p.log, "ServiceCIDR", w.cidrs)
		s.CiliumNetworkPolicies = ciliumList[ciliumv2.CiliumNetworkPolicy](w, w.cnps, &problems,
			func(u *unstructured.Unstructured) error {
				_, err := decodeCilium(u, &ciliumv2.CiliumNetworkPolicy{})
				return err
			})
		s.CiliumClusterwideNetworkPolicies = ciliumList[ciliumv2.CiliumClusterwideNetworkPolicy](w, w.ccnps, &problems,
			func(u *unstructured.Unstructured) error {
				_, err := decodeCilium(u, &ciliumv2.CiliumClusterwideNetworkPolicy{})
				return err
			})
	}
	// Optional kinds are read only once watched (their informer exists
	// and has synced; watched is stored after both).
	if w.policyKinds || w.cecKind.watched.Load() {
		s.CiliumEnvoyConfigs = ciliumList[ciliumv2.CiliumEnvoyConfig](w, w.cecs, &problems,
			func(u *unstructured.Unstructured) error {
				_, err := decodeEnvoyConfig(u, &ciliumv2.CiliumEnvoyConfig{})
				return err
			})
	}
	if w.policyKinds || w.ccecKind.watched.Load() {
		s.CiliumClusterwideEnvoyConfigs = ciliumList[ciliumv2.CiliumClusterwideEnvoyConfig](w, w.ccecs, &problems,
			func(u *unstructured.Unstructured) error {
				_, err := decodeEnvoyConfig(u, &ciliumv2.CiliumClusterwideEnvoyConfig{})
				return err
			})
	}
	sort.Strings(problems)
	w.mu.Lock()
	w.problems = problems
	w.mu.Unlock()
}

// ciliumList lists a cilium.io informer's cache: decoded objects as they
// are, an object that did not decode as its last good version (if any),
// with the decoding error in problems.
func ciliumList[T any, PT interface {
	*T
	metav1.Object
}](w *policyWatch, inf cache.SharedIndexInformer, problems *[]string, decode func(*unstructured.Unstructured) error) []PT {
	var out []PT
	for _, obj := range inf.GetStore().List() {
		switch o := obj.(type) {
		case PT:
			out = append(out, o)
		case *unstructured.Unstructured:
			msg := fmt.Sprintf("%s %s: not applied", o.GetKind(), objName(o))
			if err := decode(o); err != nil {
				msg = err.Error()
			}
			w.mu.Lock()
			prev, ok := w.lastGood[o.GetUID()].(PT)
			w.mu.Unlock()
			if ok {
				out = append(out, prev)
				msg += "; its last good version stays in effect"
			} else {
				msg += "; it is not applied"
			}
			*problems = append(*problems, msg)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := out[i].GetNamespace(), out[j].GetNamespace(); a != b {
			return a < b
		}
		return out[i].GetName() < out[j].GetName()
	})
	return out
}

// Problems returns what was wrong with the objects behind the latest
// Snapshot (policies that do not decode), one line each; the caller
// reports them as configuration errors.
func (p *Provider) Problems() []string {
	if p.policy == nil {
		return nil
	}
	p.policy.mu.Lock()
	defer p.policy.mu.Unlock()
	return append([]string(nil), p.policy.problems...)
}

// decodeEnvoyConfig decodes a CiliumEnvoyConfig or
// CiliumClusterwideEnvoyConfig, strictly: a field of the spec the types
// do not know is an error (the CRD schema preserves unknown fields, so
// they reach here rather than being pruned). The Envoy resources inside
// stay raw JSON; mesh/envoyconfig decodes them.
func decodeEnvoyConfig[T any](u *unstructured.Unstructured, out *T) (*T, error) {
	js, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", u.GetKind(), objName(u), err)
	}
	if err := json.Unmarshal(js, out); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", u.GetKind(), objName(u), err)
	}
	sj, err := json.Marshal(map[string]any{"spec": u.Object["spec"]})
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", u.GetKind(), objName(u), err)
	}
	var strict struct {
		Spec *ciliumv2.CiliumEnvoyConfigSpec `json:"spec,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(sj))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&strict); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", u.GetKind(), objName(u), err)
	}
	return out, nil
}
