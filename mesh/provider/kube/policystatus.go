package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
)

// Limits of the Valid condition, from the CRD schema (api/cilium/v2).
const (
	maxConditionMessage = 32768
	maxConditions       = 32
)

// PolicyVerdict is one node's judgement of one version of a cilium.io
// policy or Envoy config: whether that version (Generation) is valid, and
// why not.
type PolicyVerdict struct {
	// Kind is CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
	// CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig.
	Kind            string
	Namespace, Name string
	UID             types.UID
	Generation      int64
	Valid           bool
	// Reason is a CamelCase word; Message the error, for an invalid one
	// (for a valid Envoy config, what its status adds, e.g. whether its
	// upstream connections keep the client's address).
	Reason, Message string
}

func (v PolicyVerdict) key() string { return v.Kind + "/" + v.Namespace + "/" + v.Name }

// StatusWriter writes the Valid condition of cilium.io policies, as
// Cilium 1.15+ agents do, and of the Envoy config kinds (which have no
// status in Cilium: there a refused config shows only in an agent log).
// Every node's agent runs one and judges the same objects, so the writes
// are made idempotent and bounded:
//
//   - a condition equal to the one present (status, reason, message,
//     observed generation) is never written, so once one node wrote a
//     verdict the others, agreeing, write nothing;
//   - a False condition names the node that wrote it ("node N: ..."), and
//     for the same generation a True from another node never replaces it:
//     some rejections depend on the node (conflicts between policies on
//     the endpoints of that node), and a rejection anywhere must stay
//     visible; the node that wrote it may clear it;
//   - each node writes at most once per change of its own verdict (it
//     remembers what it wrote), and retries a failed write with backoff;
//   - writes use the object's resourceVersion, so a concurrent writer's
//     condition is read again before being replaced, and they go to the
//     status subresource only.
//
// An object whose kind has no status subresource (Cilium's own CRDs of
// the Envoy config kinds) is left alone: the write counts as done.
//
// NetworkPolicy has no status in networking.k8s.io/v1; its verdicts are
// only in `nodemesh status`.
type StatusWriter struct {
	dyn  dynamic.Interface
	node string
	log  *slog.Logger

	mu      sync.Mutex
	want    map[string]PolicyVerdict
	written map[string]PolicyVerdict
	kick    chan struct{}
}

// NewStatusWriter returns a writer for this node's verdicts.
func NewStatusWriter(dyn dynamic.Interface, node string, log *slog.Logger) *StatusWriter {
	if log == nil {
		log = slog.Default()
	}
	return &StatusWriter{dyn: dyn, node: node, log: log, want: map[string]PolicyVerdict{},
		written: map[string]PolicyVerdict{}, kick: make(chan struct{}, 1)}
}

// Update replaces the verdicts to publish. It never blocks; Run writes.
func (w *StatusWriter) Update(vs []PolicyVerdict) {
	want := make(map[string]PolicyVerdict, len(vs))
	for _, v := range vs {
		want[v.key()] = v
	}
	w.mu.Lock()
	w.want = want
	for k := range w.written {
		if _, ok := want[k]; !ok {
			delete(w.written, k)
		}
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run writes verdicts until ctx ends.
func (w *StatusWriter) Run(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		var retry <-chan time.Time
		if backoff > 0 {
			retry = time.After(backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-retry:
		}
		if w.Sync(ctx) {
			backoff = 0
		} else if backoff = 2*backoff + time.Second; backoff > time.Minute {
			backoff = time.Minute
		}
	}
}

// Sync writes every verdict that differs from what this writer last
// wrote. It reports whether every write succeeded.
func (w *StatusWriter) Sync(ctx context.Context) bool {
	w.mu.Lock()
	var todo []PolicyVerdict
	for k, v := range w.want {
		if w.written[k] != v {
			todo = append(todo, v)
		}
	}
	w.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].key() < todo[j].key() })
	ok := true
	for _, v := range todo {
		if ctx.Err() != nil {
			return false
		}
		if err := w.write(ctx, v); err != nil {
			ok = false
			w.log.Warn("writing policy status", "kind", v.Kind, "namespace", v.Namespace, "name", v.Name, "err", err)
			continue
		}
		w.mu.Lock()
		if cur, still := w.want[v.key()]; still && cur == v {
			w.written[v.key()] = v
		}
		w.mu.Unlock()
	}
	return ok
}

func (w *StatusWriter) resource(v PolicyVerdict) (dynamic.ResourceInterface, error) {
	switch v.Kind {
	case "CiliumNetworkPolicy":
		return w.dyn.Resource(ciliumv2.CiliumNetworkPolicyResource).Namespace(v.Namespace), nil
	case "CiliumClusterwideNetworkPolicy":
		return w.dyn.Resource(ciliumv2.CiliumClusterwideNetworkPolicyResource), nil
	case "CiliumEnvoyConfig":
		return w.dyn.Resource(ciliumv2.CiliumEnvoyConfigResource).Namespace(v.Namespace), nil
	case "CiliumClusterwideEnvoyConfig":
		return w.dyn.Resource(ciliumv2.CiliumClusterwideEnvoyConfigResource), nil
	}
	return nil, fmt.Errorf("kind %q has no status", v.Kind)
}

// condition is the Valid condition v stands for, written by this node.
func (w *StatusWriter) condition(v PolicyVerdict) ciliumv2.NetworkPolicyCondition {
	c := ciliumv2.NetworkPolicyCondition{Type: ciliumv2.PolicyConditionValid, Status: metav1.ConditionTrue,
		Reason: v.Reason, ObservedGeneration: v.Generation, Message: "Policy validation succeeded"}
	if strings.HasSuffix(v.Kind, "EnvoyConfig") {
		c.Message = "Every resource is accepted"
		// What an accepted config's status adds (where its upstream
		// connections come from) is the same on every node that runs
		// the agent with the same flags, so it carries no node name.
		if v.Valid && v.Message != "" {
			c.Message = truncate(c.Message+"; "+v.Message, maxConditionMessage)
		}
	}
	if c.Reason == "" {
		c.Reason = "Valid"
	}
	if !v.Valid {
		c.Status = metav1.ConditionFalse
		c.Message = truncate(w.nodePrefix()+v.Message, maxConditionMessage)
		if v.Reason == "" {
			c.Reason = "Invalid"
		}
	}
	return c
}

func (w *StatusWriter) nodePrefix() string { return "node " + w.node + ": " }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// write reads the object, decides, and patches its status; on a conflict
// (another node wrote meanwhile) it reads again, a few times at most.
func (w *StatusWriter) write(ctx context.Context, v PolicyVerdict) error {
	res, err := w.resource(v)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		u, err := res.Get(ctx, v.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // gone: nothing to report on
		}
		if err != nil {
			return fmt.Errorf("reading: %w", err)
		}
		if u.GetUID() != v.UID || u.GetGeneration() != v.Generation {
			return nil // a newer version is on its way to translation
		}
		patch, needed, err := w.patchFor(u, v)
		if err != nil || !needed {
			return err
		}
		_, err = res.Patch(ctx, v.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
		if err == nil {
			return nil
		}
		if apierrors.IsNotFound(err) {
			// The object exists (just read), so its kind has no status
			// subresource: a CRD that does not describe one.
			w.log.Debug("not writing status: the kind has no status subresource", "kind", v.Kind, "name", v.Name)
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 3 {
			return fmt.Errorf("patching status: %w", err)
		}
	}
}

// patchFor returns the merge patch that puts v's condition on u, or
// needed false when u already says what it should.
func (w *StatusWriter) patchFor(u *unstructured.Unstructured, v PolicyVerdict) ([]byte, bool, error) {
	// Every kind written here keeps its conditions at status.conditions.
	var status struct {
		Conditions []ciliumv2.NetworkPolicyCondition `json:"conditions,omitempty"`
	}
	if raw, ok := u.Object["status"].(map[string]any); ok {
		// Unreadable conditions are replaced, not trusted.
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &status)
	}
	want := w.condition(v)
	var keep []ciliumv2.NetworkPolicyCondition
	for _, c := range status.Conditions {
		if c.Type != ciliumv2.PolicyConditionValid {
			if len(keep) < maxConditions-1 {
				keep = append(keep, c)
			}
			continue
		}
		if c.Status == want.Status && c.Reason == want.Reason && c.Message == want.Message && c.ObservedGeneration == want.ObservedGeneration {
			return nil, false, nil
		}
		// Another node's rejection of this generation stays.
		if want.Status == metav1.ConditionTrue && c.Status == metav1.ConditionFalse &&
			c.ObservedGeneration == want.ObservedGeneration && !strings.HasPrefix(c.Message, w.nodePrefix()) {
			return nil, false, nil
		}
		want.LastTransitionTime = c.LastTransitionTime
		if c.Status != want.Status {
			want.LastTransitionTime = metav1.Time{}
		}
	}
	if want.LastTransitionTime.IsZero() {
		want.LastTransitionTime = metav1.NewTime(time.Now().Truncate(time.Second))
	}
	conds := append(keep, want)
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": u.GetResourceVersion()},
		"status":   map[string]any{"conditions": conds},
	})
	if err != nil {
		return nil, false, fmt.Errorf("encoding status patch: %w", err)
	}
	return patch, true, nil
}
