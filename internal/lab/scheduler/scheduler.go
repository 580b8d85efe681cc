package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Scheduler binds unscheduled Pods to nodes. Create it with New and call
// Run once.
type Scheduler struct {
	client kubernetes.Interface
	log    *slog.Logger
	queue  workqueue.TypedRateLimitingInterface[string]
	pods   listersv1.PodLister
	nodes  listersv1.NodeLister
	events record.EventRecorder

	// assumed holds bindings made but not yet seen in the informer, so
	// replicas created together spread instead of piling onto the node
	// that looked emptiest a moment ago.
	mu      sync.Mutex
	assumed map[string]string // pod key → node
}

// New returns a scheduler using client.
func New(client kubernetes.Interface, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.Default()
	}
	return &Scheduler{
		client: client, log: log, assumed: map[string]string{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
}

func pending(p *corev1.Pod) bool {
	return p.Spec.NodeName == "" && p.DeletionTimestamp == nil &&
		(p.Spec.SchedulerName == "" || p.Spec.SchedulerName == corev1.DefaultSchedulerName) &&
		p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	eb := record.NewBroadcaster(record.WithContext(ctx))
	eb.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	defer eb.Shutdown()
	s.events = eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: corev1.DefaultSchedulerName})

	f := informers.NewSharedInformerFactory(s.client, 0)
	podInf, nodeInf := f.Core().V1().Pods(), f.Core().V1().Nodes()
	s.pods, s.nodes = podInf.Lister(), nodeInf.Lister()
	_, _ = podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.enqueuePod(o) },
		UpdateFunc: func(_, o any) { s.enqueuePod(o) },
		DeleteFunc: func(o any) {
			if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
				s.forget(k)
			}
		},
	})
	// A node that appears or changes may fit Pods that fit nothing so far.
	retryAll := func(any) {
		pods, _ := s.pods.List(labels.Everything())
		for _, p := range pods {
			s.enqueuePod(p)
		}
	}
	_, _ = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: retryAll, UpdateFunc: func(_, o any) { retryAll(o) }, DeleteFunc: retryAll,
	})
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), podInf.Informer().HasSynced, nodeInf.Informer().HasSynced) {
		return nil
	}
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	for {
		key, quit := s.queue.Get()
		if quit {
			return nil
		}
		if err := s.schedule(ctx, key); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduling pod", "pod", key, "err", err)
			s.queue.AddRateLimited(key)
		} else {
			s.queue.Forget(key)
		}
		s.queue.Done(key)
	}
}

func (s *Scheduler) enqueuePod(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	key := p.Namespace + "/" + p.Name
	if p.Spec.NodeName != "" {
		s.forget(key)
		return
	}
	if pending(p) {
		s.queue.Add(key)
	}
}

func (s *Scheduler) forget(key string) {
	s.mu.Lock()
	delete(s.assumed, key)
	s.mu.Unlock()
}

func (s *Scheduler) schedule(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	p, err := s.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	_, bound := s.assumed[key]
	s.mu.Unlock()
	if !pending(p) || bound {
		return nil
	}
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	node, why := pick(p, nodes, s.load())
	if node == "" {
		s.events.Event(p, corev1.EventTypeWarning, "FailedScheduling", why)
		return s.unschedulable(ctx, p, why)
	}
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	err = s.client.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or bound meanwhile
	}
	if err != nil {
		return fmt.Errorf("binding Pod %s to %s: %w", key, node, err)
	}
	s.mu.Lock()
	s.assumed[key] = node
	s.mu.Unlock()
	s.events.Eventf(p, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s to %s", key, node)
	s.log.Debug("pod scheduled", "pod", key, "node", node)
	return nil
}

// load counts the Pods each node runs (bound and not finished), plus
// bindings the informer has not shown yet.
func (s *Scheduler) load() map[string]int {
	out := map[string]int{}
	pods, _ := s.pods.List(labels.Everything())
	seen := map[string]bool{}
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		out[p.Spec.NodeName]++
		seen[p.Namespace+"/"+p.Name] = true
	}
	s.mu.Lock()
	for key, node := range s.assumed {
		if !seen[key] {
			out[node]++
		}
	}
	s.mu.Unlock()
	return out
}

// unschedulable records why the Pod waits, as kube-scheduler does.
func (s *Scheduler) unschedulable(ctx context.Context, p *corev1.Pod, why string) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == why {
			return nil
		}
	}
	cp := p.DeepCopy()
	cond := corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: why, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second)),
	}
	replaced := false
	for i := range cp.Status.Conditions {
		if cp.Status.Conditions[i].Type == corev1.PodScheduled {
			cp.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		cp.Status.Conditions = append(cp.Status.Conditions, cond)
	}
	if cp.Status.Phase == "" {
		cp.Status.Phase = corev1.PodPending
	}
	_, err := s.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing why Pod %s/%s is unschedulable: %w", p.Namespace, p.Name, err)
	}
	return nil
}
