package lbipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// IPsAnnotation asks for specific addresses (Cilium's LB-IPAM
// annotation).
const IPsAnnotation = "lbipam.cilium.io/ips"

// Allocator assigns load-balancer addresses from one pool.
type Allocator struct {
	client kubernetes.Interface
	pool   netip.Prefix
	log    *slog.Logger
}

// New returns an allocator for pool; Run starts it.
func New(client kubernetes.Interface, pool netip.Prefix, log *slog.Logger) (*Allocator, error) {
	if !pool.IsValid() || !pool.Addr().Is4() {
		return nil, fmt.Errorf("load-balancer pool %s: not an IPv4 prefix", pool)
	}
	return &Allocator{client: client, pool: pool.Masked(), log: log}, nil
}

// Run assigns addresses until ctx ends.
func (a *Allocator) Run(ctx context.Context) error {
	fact := informers.NewSharedInformerFactory(a.client, 10*time.Second)
	inf := fact.Core().V1().Services().Informer()
	changed := make(chan struct{}, 1)
	signal := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: signal, DeleteFunc: signal, UpdateFunc: func(_, cur any) { signal(cur) },
	})
	fact.Start(ctx.Done())
	defer fact.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil
	}
	for {
		var svcs []*corev1.Service
		for _, o := range inf.GetStore().List() {
			if s, ok := o.(*corev1.Service); ok {
				svcs = append(svcs, s)
			}
		}
		for _, w := range Plan(a.pool, svcs) {
			if err := a.write(ctx, w); err != nil && ctx.Err() == nil {
				a.log.Warn("writing load-balancer status", "service", w.Service.Namespace+"/"+w.Service.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// Write is one status change Plan asks for.
type Write struct {
	Service *corev1.Service
	// Addr is the address to show; invalid clears the status.
	Addr netip.Addr
}

func (a *Allocator) write(ctx context.Context, w Write) error {
	s := w.Service.DeepCopy()
	s.Status.LoadBalancer = ingressFor(w.Addr)
	_, err := a.client.CoreV1().Services(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{FieldManager: "nodemesh-lab-lbipam"})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // the next event brings the current object
	}
	return err
}

func ingressFor(addr netip.Addr) corev1.LoadBalancerStatus {
	if !addr.IsValid() {
		return corev1.LoadBalancerStatus{}
	}
	proxy := corev1.LoadBalancerIPModeProxy
	return corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: addr.String(), IPMode: &proxy}}}
}

// Plan decides every Service's address from the current objects alone
// (what their status shows is the previous assignment) and returns the
// status writes needed. Pure, so a restarted allocator decides the same.
func Plan(pool netip.Prefix, svcs []*corev1.Service) []Write {
	var ours []*corev1.Service
	for _, s := range svcs {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil {
			ours = append(ours, s)
		}
	}
	sort.Slice(ours, func(i, j int) bool {
		ti, tj := ours[i].CreationTimestamp, ours[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return ours[i].Namespace+"/"+ours[i].Name < ours[j].Namespace+"/"+ours[j].Name
	})
	taken := map[netip.Addr]bool{}
	got := make([]netip.Addr, len(ours))
	// Pass 1: keep current addresses that are still valid, oldest first.
	for i, s := range ours {
		cur := current(s)
		reqs, explicit := requested(s)
		if cur.IsValid() && pool.Contains(cur) && !taken[cur] && (!explicit || contains(reqs, cur)) {
			got[i] = cur
			taken[cur] = true
		}
	}
	// Pass 2: requested addresses, then the lowest free one.
	for i, s := range ours {
		if got[i].IsValid() {
			continue
		}
		reqs, explicit := requested(s)
		if explicit {
			for _, r := range reqs {
				if pool.Contains(r) && !taken[r] {
					got[i] = r
					break
				}
			}
		} else {
			for c := pool.Addr().Next(); pool.Contains(c); c = c.Next() {
				if !taken[c] && c != lastAddr(pool) {
					got[i] = c
					break
				}
			}
		}
		if got[i].IsValid() {
			taken[got[i]] = true
		}
	}
	var out []Write
	for i, s := range ours {
		if !equality.Semantic.DeepEqual(s.Status.LoadBalancer, ingressFor(got[i])) {
			out = append(out, Write{Service: s, Addr: got[i]})
		}
	}
	return out
}

// current is the address the Service's status shows.
func current(s *corev1.Service) netip.Addr {
	for _, ing := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			return a
		}
	}
	return netip.Addr{}
}

// requested parses the annotation; explicit is true when it is present,
// even if nothing in it parses (then nothing is assigned).
func requested(s *corev1.Service) ([]netip.Addr, bool) {
	v, ok := s.Annotations[IPsAnnotation]
	if !ok {
		return nil, false
	}
	var out []netip.Addr
	for _, f := range strings.Split(v, ",") {
		if a, err := netip.ParseAddr(strings.TrimSpace(f)); err == nil {
			out = append(out, a)
		}
	}
	return out, true
}

func contains(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// lastAddr is the pool's broadcast address, never handed out.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= 1<<host - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
