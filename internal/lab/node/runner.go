package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// Config configures a Runner.
type Config struct {
	Client kubernetes.Interface
	// Node is the node's namespace: the Node object's name, address and
	// Pod CIDR are its, and every Pod gets a namespace from it.
	Node *network.Node
	// Images maps image repositories to local programs; of two entries
	// for one repository the later wins.
	Images []Image
	// LocalCommands lets a container whose command names a program on
	// this machine run that program as is (see doc.go).
	LocalCommands bool
	// DNS is the cluster DNS Service address Pods resolve with; when
	// invalid, Pods get no resolv.conf of their own.
	DNS netip.Addr
	// ClusterDomain is the DNS domain of the cluster (cluster.local).
	ClusterDomain string
	// Labels are added to the Node's own (hostname, os, arch).
	Labels map[string]string
	// Env is added to every container's environment, before the
	// container's own variables (which win): what the node offers every
	// Pod, such as the SPIFFE Workload API socket.
	Env []string
	// Dir holds Pod volumes and container logs.
	Dir string
	// Cgroup, when set, is the cgroup v2 directory every container
	// process starts in (kubelet's kubepods): the node's datapath attaches
	// socket-level Service translation there.
	Cgroup string
	// KubeletClientCA, when set, is the PEM file of the CA whose client
	// certificates may read Pod logs: the runner then serves them on the
	// node's address, port KubeletPort, as a kubelet does (logs.go).
	KubeletClientCA string
	Log             *slog.Logger
}

// Runner is the local node. Create it with New and call Run once.
type Runner struct {
	cfg    Config
	log    *slog.Logger
	images map[string]Image
	queue  workqueue.TypedRateLimitingInterface[string]
	pods   cache.Indexer
	local  map[string]*pod // by namespace/name
	hostIP string
	events record.EventRecorder
	// execs are the containers exec may run commands in.
	execs execTargets
}

// pod is a Pod running here.
type pod struct {
	uid        types.UID
	w          *network.Pod
	dir        string
	started    time.Time
	containers []*container
	// problem, when set, keeps every container waiting with this reason;
	// retry says the problem may go away (a missing Secret, say).
	problemReason, problem string
	retry                  bool
}

// New returns a runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Client == nil || cfg.Node == nil || cfg.Dir == "" {
		return nil, errors.New("creating node runner: Client, Node and Dir are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	r := &Runner{
		cfg: cfg, log: cfg.Log, images: map[string]Image{}, local: map[string]*pod{},
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		hostIP: cfg.Node.IP.String(),
	}
	for _, im := range cfg.Images {
		r.images[Repository(im.Repository)] = im
	}
	return r, nil
}

// Run registers the Node and runs the Pods bound to it until ctx ends,
// then stops every local process and removes every Pod namespace.
func (r *Runner) Run(ctx context.Context) error {
	defer r.shutdown()
	if err := r.register(ctx); err != nil {
		return err
	}
	eb := record.NewBroadcaster(record.WithContext(ctx))
	eb.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: r.cfg.Client.CoreV1().Events("")})
	defer eb.Shutdown()
	r.events = eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: r.cfg.Node.Name})
	// Only this node's Pods: binding is the scheduler's job.
	f := informers.NewSharedInformerFactoryWithOptions(r.cfg.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "spec.nodeName=" + r.cfg.Node.Name
	}))
	inf := f.Core().V1().Pods().Informer()
	enqueue := func(o any) {
		if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			r.queue.Add(k)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, DeleteFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
	})
	r.pods = inf.GetIndexer()
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil
	}
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
	}()
	go r.heartbeat(ctx)
	go func() {
		if err := r.serveLogs(ctx); err != nil {
			r.log.Warn("Pod logs are not served", "err", err)
		}
	}()
	for {
		key, quit := r.queue.Get()
		if quit {
			return nil
		}
		if err := r.sync(ctx, key); err != nil && ctx.Err() == nil {
			r.log.Warn("syncing pod", "pod", key, "err", err)
			r.queue.AddRateLimited(key)
		} else {
			r.queue.Forget(key)
		}
		r.queue.Done(key)
	}
}

// register creates (or refreshes) the Node object, Ready.
func (r *Runner) register(ctx context.Context) error {
	nodes := r.cfg.Client.CoreV1().Nodes()
	name := r.cfg.Node.Name
	labels := map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH}
	for k, v := range r.cfg.Labels {
		labels[k] = v
	}
	cidr := r.cfg.Node.PodCIDR.String()
	// The node's ingress address, as a CNI that reserves one announces
	// it (see datapath/model.IngressIPAnnotation).
	ingress := r.cfg.Node.IngressIP.String()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels,
			Annotations: map[string]string{model.IngressIPAnnotation: ingress}},
		Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
	}
	cur, err := nodes.Create(ctx, n, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, err = nodes.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering Node %s: %w", name, err)
	}
	// The API server taints a new Node not-ready; in a cluster the node
	// lifecycle controller lifts that once the kubelet reports Ready. The
	// lab does not run that controller (it would evict Pods of nodes that
	// renew no Lease), so the runner lifts it itself.
	var keep []corev1.Taint
	for _, t := range cur.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady && t.Key != corev1.TaintNodeUnreachable {
			keep = append(keep, t)
		}
	}
	if len(keep) != len(cur.Spec.Taints) || cur.Annotations[model.IngressIPAnnotation] != ingress {
		cp := cur.DeepCopy()
		cp.Spec.Taints = keep
		if cp.Annotations == nil {
			cp.Annotations = map[string]string{}
		}
		cp.Annotations[model.IngressIPAnnotation] = ingress
		if cur, err = nodes.Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating Node %s (not-ready taint, ingress address): %w", name, err)
		}
	}
	return r.nodeStatus(ctx, cur)
}

func (r *Runner) nodeStatus(ctx context.Context, cur *corev1.Node) error {
	now := metav1.Now()
	cp := cur.DeepCopy()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("16Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
	cp.Status.Capacity, cp.Status.Allocatable = capacity, capacity
	cp.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: r.hostIP}, {Type: corev1.NodeHostName, Address: r.cfg.Node.Name}}
	cp.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "LabNodeReady",
		Message: "the lab's node runner is running", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	cp.Status.NodeInfo.KubeletVersion = "nodemesh-lab"
	if r.cfg.KubeletClientCA != "" {
		// Where the API server asks for Pod logs.
		cp.Status.DaemonEndpoints.KubeletEndpoint.Port = KubeletPort
	}
	cp.Status.NodeInfo.OperatingSystem, cp.Status.NodeInfo.Architecture = "linux", runtime.GOARCH
	if _, err := r.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing Node %s status: %w", r.cfg.Node.Name, err)
	}
	return nil
}

// heartbeat refreshes the Node's Ready condition, as a kubelet does.
func (r *Runner) heartbeat(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := r.cfg.Client.CoreV1().Nodes().Get(ctx, r.cfg.Node.Name, metav1.GetOptions{}); err == nil {
			if err := r.nodeStatus(ctx, n); err != nil && ctx.Err() == nil {
				r.log.Warn("refreshing node status", "err", err)
			}
		}
	}
}

func (r *Runner) sync(ctx context.Context, key string) error {
	obj, exists, err := r.pods.GetByKey(key)
	if err != nil {
		return err
	}
	lp := r.local[key]
	if !exists {
		if lp != nil {
			r.teardown(key, lp, 0)
		}
		return nil
	}
	p := obj.(*corev1.Pod)
	if lp != nil && lp.uid != p.UID {
		// Same name, new Pod: the old one is gone.
		r.teardown(key, lp, 0)
		lp = nil
	}
	switch {
	case p.Spec.NodeName != r.cfg.Node.Name:
		return nil
	case p.DeletionTimestamp != nil:
		grace := 30 * time.Second
		if p.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*p.DeletionGracePeriodSeconds) * time.Second
		}
		if lp != nil {
			r.teardown(key, lp, grace)
		}
		zero := int64(0)
		err := r.cfg.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("removing Pod %s: %w", key, err)
		}
		return nil
	}
	if lp == nil {
		var err error
		if lp, err = r.create(ctx, p); err != nil {
			return err
		}
		r.local[key] = lp
	}
	r.restart(key, p, lp)
	if err := r.writeStatus(ctx, p, lp); err != nil {
		return err
	}
	if lp.retry {
		// Like the kubelet, try again later: the Secret or ConfigMap a
		// volume or variable needs may simply not exist yet.
		r.teardown(key, lp, 0)
		return errors.New(lp.problem)
	}
	return nil
}

// create gives a new Pod its namespace, volumes and containers (not yet
// started).
func (r *Runner) create(ctx context.Context, p *corev1.Pod) (*pod, error) {
	lp := &pod{uid: p.UID, dir: filepath.Join(r.cfg.Dir, p.Namespace, p.Name+"-"+string(p.UID)[:8]), started: time.Now()}
	if err := os.MkdirAll(lp.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating Pod directory: %w", err)
	}
	for _, c := range p.Spec.Containers {
		lp.containers = append(lp.containers, &container{spec: c, log: filepath.Join(lp.dir, c.Name+".log")})
	}
	if err := checkPod(p); err != nil {
		lp.problemReason, lp.problem = "Unsupported", err.Error()
		r.events.Event(p, corev1.EventTypeWarning, lp.problemReason, lp.problem)
		return lp, nil
	}
	programs := make([][]string, len(p.Spec.Containers))
	for i, c := range p.Spec.Containers {
		argv, reason, err := r.program(i, c)
		if err != nil {
			lp.problemReason, lp.problem = reason, err.Error()
			r.events.Event(p, corev1.EventTypeWarning, reason, lp.problem)
			return lp, nil
		}
		programs[i] = argv
	}
	var resolv []byte
	if r.cfg.DNS.IsValid() {
		resolv = resolvConf(p, r.cfg.DNS, r.cfg.ClusterDomain)
	}
	w, err := r.cfg.Node.AddPod(string(p.UID), resolv)
	if err != nil {
		return nil, fmt.Errorf("creating network namespace for Pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	lp.w = w
	vols, err := writeVolumes(ctx, r.cfg.Client, p, filepath.Join(lp.dir, "volumes"))
	if err != nil {
		lp.problemReason, lp.problem, lp.retry = "CreateContainerConfigError", err.Error(), true
		return lp, nil
	}
	withIP := p.DeepCopy()
	withIP.Status.PodIP = w.IP.String()
	for i, c := range lp.containers {
		rw := newPathRewriter(c.spec, vols)
		e, err := env(ctx, r.cfg.Client, withIP, c.spec, r.hostIP, rw)
		if err != nil {
			lp.problemReason, lp.problem, lp.retry = "CreateContainerConfigError", err.Error(), true
			return lp, nil
		}
		// exec takes the last value of a repeated name: the node's go
		// first so the container's own win.
		e = append(append([]string(nil), r.cfg.Env...), e...)
		argv := programs[i]
		for _, a := range c.spec.Args {
			argv = append(argv, rw.rewrite(a))
		}
		c.argv, c.env, c.w, c.cgroup = argv, e, w, r.cfg.Cgroup
	}
	for _, c := range lp.containers {
		r.execs.set(p.Namespace+"/"+p.Name+"/"+c.spec.Name, execTarget{
			uid: string(p.UID), netns: w.Name, cgroup: r.cfg.Cgroup, env: c.env, dir: lp.dir,
			commands: r.images[Repository(c.spec.Image)].Commands,
		})
	}
	r.log.Info("pod placed here", "pod", p.Namespace+"/"+p.Name, "ip", w.IP, "netns", w.Name)
	return lp, nil
}

// restart starts containers that should run and are not running, with
// the kubelet's back-off for restarts.
func (r *Runner) restart(key string, p *corev1.Pod, lp *pod) {
	if lp.problem != "" {
		return
	}
	for _, c := range lp.containers {
		c.mu.Lock()
		running, last, next := c.running, c.last, c.nextStart
		c.mu.Unlock()
		if running {
			continue
		}
		if last != nil {
			switch p.Spec.RestartPolicy {
			case corev1.RestartPolicyNever:
				continue
			case corev1.RestartPolicyOnFailure:
				if last.ExitCode == 0 {
					continue
				}
			}
			if wait := time.Until(next); wait > 0 {
				r.queue.AddAfter(key, wait)
				continue
			}
		}
		onExit := func() { r.queue.Add(key) }
		if err := c.start(onExit); err != nil {
			c.mu.Lock()
			c.waitReason, c.waitMsg = "RunContainerError", err.Error()
			c.mu.Unlock()
			r.events.Event(p, corev1.EventTypeWarning, "Failed", err.Error())
			continue
		}
		r.events.Eventf(p, corev1.EventTypeNormal, "Started", "Started container %s", c.spec.Name)
		if last != nil {
			c.mu.Lock()
			c.restarts++
			c.backoff = min(max(2*c.backoff, 10*time.Second), 5*time.Minute)
			c.nextStart = time.Now().Add(c.backoff)
			c.mu.Unlock()
		}
	}
}

// teardown stops a Pod's processes and removes its namespace.
func (r *Runner) teardown(key string, lp *pod, grace time.Duration) {
	r.execs.remove(key, lp.containers)
	for _, c := range lp.containers {
		c.stop(grace)
	}
	if lp.w != nil {
		if err := r.cfg.Node.RemovePod(lp.w); err != nil {
			r.log.Warn("removing pod namespace", "pod", key, "err", err)
		}
	}
	delete(r.local, key)
}

func (r *Runner) shutdown() {
	for key, lp := range r.local {
		r.teardown(key, lp, 2*time.Second)
	}
}

// writeStatus reports the Pod's local state.
func (r *Runner) writeStatus(ctx context.Context, p *corev1.Pod, lp *pod) error {
	st := p.Status.DeepCopy()
	st.HostIP = r.hostIP
	st.HostIPs = []corev1.HostIP{{IP: r.hostIP}}
	if st.StartTime == nil {
		t := metav1.NewTime(lp.started.Truncate(time.Second))
		st.StartTime = &t
	}
	if lp.w != nil {
		st.PodIP = lp.w.IP.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	st.ContainerStatuses = nil
	allReady, anyRunning, allDone, anyFailed := true, false, true, false
	for _, c := range lp.containers {
		cs := c.status()
		if lp.problem != "" {
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: lp.problemReason, Message: lp.problem}}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		allReady = allReady && cs.Ready
		anyRunning = anyRunning || cs.State.Running != nil
		done := cs.State.Terminated != nil
		allDone = allDone && done
		anyFailed = anyFailed || done && cs.State.Terminated.ExitCode != 0
	}
	switch {
	case anyRunning:
		st.Phase = corev1.PodRunning
	case allDone && p.Spec.RestartPolicy == corev1.RestartPolicyNever && anyFailed:
		st.Phase = corev1.PodFailed
	case allDone && p.Spec.RestartPolicy != corev1.RestartPolicyAlways:
		st.Phase = corev1.PodSucceeded
	case st.Phase == "":
		st.Phase = corev1.PodPending
	}
	cond := func(ok bool) corev1.ConditionStatus {
		if ok {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	setCondition(st, corev1.PodScheduled, corev1.ConditionTrue)
	setCondition(st, corev1.PodInitialized, cond(lp.problem == ""))
	setCondition(st, corev1.ContainersReady, cond(allReady))
	setCondition(st, corev1.PodReady, cond(allReady))
	if equality.Semantic.DeepEqual(&p.Status, st) {
		return nil
	}
	cp := p.DeepCopy()
	cp.Status = *st
	_, err := r.cfg.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		r.queue.Add(p.Namespace + "/" + p.Name)
		return nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("writing Pod %s/%s status: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// setCondition sets one Pod condition, stamping the transition time only
// when its status changes.
func setCondition(st *corev1.PodStatus, typ corev1.PodConditionType, status corev1.ConditionStatus) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			if st.Conditions[i].Status != status {
				st.Conditions[i].Status = status
				st.Conditions[i].LastTransitionTime = metav1.NewTime(time.Now().Truncate(time.Second))
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))})
}
