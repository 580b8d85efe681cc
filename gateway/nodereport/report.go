package nodereport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
)

// AgentStatus is the part of the agent's status the Reporter reads: each
// Gateway's status with the proxies' view applied (the agent's Status), and the
// proxies themselves.
type AgentStatus struct {
	Gateways     []gateway.GatewayStatus
	Proxies      []dataplane.Proxy
	PublishError string
	// Policy is the node's network policy state (nil without policy);
	// Summarize copies it.
	Policy *v1alpha1.NodePolicyState
	// CannotRedirect says why the node cannot send a Service's traffic
	// to its proxy ("" when it can; agent.Agent.CannotRedirect).
	CannotRedirect string
}

// StatusSource returns the agent's current status. It is called from the
// Reporter's goroutine and must be safe to call concurrently with the
// agent's work (agent.Agent.Status is). Taking a function rather than the
// agent keeps this package, which the controller also links, free of the
// agent's node-side dependencies.
type StatusSource func() AgentStatus

// Reporter keeps one node's NodeProxyStatus in step with its agent. Create
// it with NewReporter and call Run once.
type Reporter struct {
	dyn        dynamic.Interface
	core       kubernetes.Interface
	node       string
	controller string
	src        StatusSource
	log        *slog.Logger
	poll       time.Duration
	heartbeat  time.Duration
	now        func() time.Time

	last     *v1alpha1.NodeProxyStatusStatus // last body written, heartbeat zeroed
	lastBeat time.Time
	rv       string
}

// ReporterOption configures a Reporter.
type ReporterOption func(*Reporter)

// WithReportIntervals sets how often the agent's status is polled (default
// 200ms) and how often the heartbeat is rewritten when nothing changed
// (default 30s).
func WithReportIntervals(poll, heartbeat time.Duration) ReporterOption {
	return func(r *Reporter) { r.poll, r.heartbeat = poll, heartbeat }
}

// WithReporterLogger sets the logger (default slog.Default()).
func WithReporterLogger(l *slog.Logger) ReporterOption { return func(r *Reporter) { r.log = l } }

// NewReporter returns a reporter writing the NodeProxyStatus named node.
// core may be nil; when set, the object is owned by the Node of the same
// name (if it exists), so deleting the Node garbage-collects the report.
func NewReporter(dyn dynamic.Interface, core kubernetes.Interface, node string, controller gwv1.GatewayController, src StatusSource, opts ...ReporterOption) *Reporter {
	r := &Reporter{
		dyn: dyn, core: core, node: node, controller: string(controller), src: src,
		log: slog.Default(), poll: 200 * time.Millisecond, heartbeat: 30 * time.Second, now: time.Now,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Run reports until ctx ends. Write failures are logged and retried on the
// next tick; they never stop the agent.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(r.poll)
	defer t.Stop()
	for {
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reporting node proxy status", "node", r.node, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync writes the report once if it changed or the heartbeat is due.
func (r *Reporter) Sync(ctx context.Context) error {
	body := Summarize(r.src(), r.controller)
	now := r.now()
	if r.last != nil && reflect.DeepEqual(*r.last, body) && now.Sub(r.lastBeat) < r.heartbeat {
		return nil
	}
	body.HeartbeatTime = metav1.NewTime(now.Truncate(time.Second))
	if err := r.write(ctx, body); err != nil {
		return err
	}
	body.HeartbeatTime = metav1.Time{}
	r.last, r.lastBeat = &body, now
	return nil
}

func (r *Reporter) client() dynamic.ResourceInterface {
	return r.dyn.Resource(v1alpha1.NodeProxyStatusResource)
}

// write creates or replaces the object. A conflict (someone else wrote it,
// or our cached resourceVersion is stale) re-reads and retries once.
func (r *Reporter) write(ctx context.Context, body v1alpha1.NodeProxyStatusStatus) error {
	for attempt := 0; ; attempt++ {
		obj := &v1alpha1.NodeProxyStatus{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.Group + "/" + v1alpha1.Version, Kind: "NodeProxyStatus"},
			ObjectMeta: metav1.ObjectMeta{Name: r.node, ResourceVersion: r.rv},
			Status:     body,
		}
		if r.rv == "" {
			obj.OwnerReferences = r.owner(ctx)
		}
		u, err := toUnstructured(obj)
		if err != nil {
			return err
		}
		var out *unstructured.Unstructured
		if r.rv == "" {
			out, err = r.client().Create(ctx, u, metav1.CreateOptions{FieldManager: "nodemesh-agent"})
		} else {
			out, err = r.client().Update(ctx, u, metav1.UpdateOptions{FieldManager: "nodemesh-agent"})
		}
		if err == nil {
			r.rv = out.GetResourceVersion()
			return nil
		}
		if attempt > 0 || !(apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) || apierrors.IsNotFound(err)) {
			return fmt.Errorf("writing NodeProxyStatus %s: %w", r.node, err)
		}
		cur, gerr := r.client().Get(ctx, r.node, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(gerr):
			r.rv = ""
		case gerr != nil:
			return fmt.Errorf("reading NodeProxyStatus %s: %w", r.node, gerr)
		default:
			r.rv = cur.GetResourceVersion()
		}
	}
}

func (r *Reporter) owner(ctx context.Context) []metav1.OwnerReference {
	if r.core == nil {
		return nil
	}
	n, err := r.core.CoreV1().Nodes().Get(ctx, r.node, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
}

func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", obj, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// FromUnstructured decodes a NodeProxyStatus read through the dynamic
// client.
func FromUnstructured(u *unstructured.Unstructured) (*v1alpha1.NodeProxyStatus, error) {
	if u == nil {
		return nil, errors.New("decoding NodeProxyStatus: nil object")
	}
	var out v1alpha1.NodeProxyStatus
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &out); err != nil {
		return nil, fmt.Errorf("decoding NodeProxyStatus %s: %w", u.GetName(), err)
	}
	return &out, nil
}

// Summarize turns the agent's status into the body of its node's report
// (without heartbeat): each Gateway's Programmed verdict, which already
// carries the proxies' ACK or NACK, and the proxies themselves.
func Summarize(st AgentStatus, controller string) v1alpha1.NodeProxyStatusStatus {
	out := v1alpha1.NodeProxyStatusStatus{ControllerName: controller, PublishError: st.PublishError, Policy: st.Policy.DeepCopy(),
		CannotRedirect: st.CannotRedirect}
	for _, g := range st.Gateways {
		gp := v1alpha1.GatewayProgramming{Namespace: g.Key.Namespace, Name: g.Key.Name, Status: metav1.ConditionUnknown, Reason: string(gwv1.GatewayReasonPending)}
		if c := meta.FindStatusCondition(g.Status.Conditions, string(gwv1.GatewayConditionProgrammed)); c != nil {
			gp.ObservedGeneration, gp.Status, gp.Reason, gp.Message = c.ObservedGeneration, c.Status, c.Reason, c.Message
		}
		out.Gateways = append(out.Gateways, gp)
	}
	for _, p := range st.Proxies {
		ps := v1alpha1.ProxyState{Node: p.Node, Connected: p.Connected}
		for _, ts := range p.Types {
			if ts.Nack != nil {
				ps.Rejected = fmt.Sprintf("%s version %s: %s", ts.Type, ts.Nack.Version, ts.Nack.Message)
				break
			}
		}
		out.Proxies = append(out.Proxies, ps)
	}
	return out
}
