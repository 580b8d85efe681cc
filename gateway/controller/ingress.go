package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// Ingress status: the address of a served Ingress goes to
// status.loadBalancer.ingress (agents read it there); an Ingress that is
// not served has none. Ingress status has no conditions, so problems
// (conflicts on the shared load balancer, refused paths and annotations)
// are Warning Events on the Ingress, one per distinct set of problems.

// reconcileIngresses writes the status of every Ingress of our class and
// clears the address of Ingresses no longer ours that still show one of
// our pool's addresses. In host-network mode a served Ingress lists the
// address of every node in nodes, where it is served.
func (c *Controller) reconcileIngresses(ctx context.Context, snap *input.Snapshot, res []gateway.IngressStatus, nodes []hostNode) []error {
	byKey := make(map[input.Key]*networkingv1.Ingress, len(snap.Ingresses))
	for _, ing := range snap.Ingresses {
		byKey[input.Key{Namespace: ing.Namespace, Name: ing.Name}] = ing
	}
	var errs []error
	ours := map[input.Key]bool{}
	svcAddrs := ingressServiceAddresses(snap)
	for _, st := range res {
		ours[st.Key] = true
		ing := byKey[st.Key]
		if ing == nil {
			continue
		}
		var want []networkingv1.IngressLoadBalancerIngress
		switch {
		case !st.Served || st.Address == "":
		case c.ingressHostNetwork != nil:
			for _, a := range hostAddresses(nodes) {
				want = append(want, networkingv1.IngressLoadBalancerIngress{IP: a.String()})
			}
		default:
			want = []networkingv1.IngressLoadBalancerIngress{{IP: st.Address}}
		}
		if err := c.writeIngress(ctx, ing, want); err != nil {
			errs = append(errs, err)
		} else {
			c.ingressAddrs[st.Key] = ""
			if len(want) > 0 {
				c.ingressAddrs[st.Key] = want[0].IP
			}
		}
		if err := c.reportIngress(ctx, ing, st.Problems); err != nil {
			errs = append(errs, err)
		}
	}
	for k, ing := range byKey {
		if !ours[k] && c.showsOurAddress(ing, svcAddrs) {
			if err := c.writeIngress(ctx, ing, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for k := range c.ingressAddrs {
		if !ours[k] {
			if _, ok := byKey[k]; !ok {
				delete(c.ingressAddrs, k)
			}
		}
	}
	for k := range c.reported {
		if !ours[k] {
			delete(c.reported, k)
		}
	}
	return errs
}

// showsOurAddress reports whether an Ingress's status holds an address
// we wrote (one of our pool, of an Ingress Service we made, or the one
// we last wrote to it): it is stale once the Ingress is not ours.
func (c *Controller) showsOurAddress(ing *networkingv1.Ingress, svcAddrs map[string]bool) bool {
	wrote := c.ingressAddrs[input.Key{Namespace: ing.Namespace, Name: ing.Name}]
	for _, lb := range ing.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(lb.IP); err == nil && (c.alloc.Pool().Contains(a) || svcAddrs[lb.IP] || lb.IP == wrote) {
			return true
		}
	}
	return false
}

func (c *Controller) writeIngress(ctx context.Context, cur *networkingv1.Ingress, want []networkingv1.IngressLoadBalancerIngress) error {
	cl := c.core.NetworkingV1().Ingresses(cur.Namespace)
	name := cur.Namespace + "/" + cur.Name
	for attempt := 1; ; attempt++ {
		if equality.Semantic.DeepEqual(cur.Status.LoadBalancer.Ingress, want) ||
			len(cur.Status.LoadBalancer.Ingress) == 0 && len(want) == 0 {
			return nil
		}
		cp := cur.DeepCopy()
		cp.Status.LoadBalancer.Ingress = want
		_, err := cl.UpdateStatus(ctx, cp, metav1.UpdateOptions{FieldManager: fieldManager})
		if done, err := settled(err, attempt, "Ingress", name); done {
			return err
		}
		fresh, err := cl.Get(ctx, cur.Name, metav1.GetOptions{})
		if err != nil {
			return ignoreNotFound(err, "Ingress", name)
		}
		cur = fresh
	}
}

// reportIngress emits one Warning Event for a new set of problems.
func (c *Controller) reportIngress(ctx context.Context, ing *networkingv1.Ingress, problems []string) error {
	k := input.Key{Namespace: ing.Namespace, Name: ing.Name}
	text := strings.Join(problems, "\n")
	if c.reported[k] == text {
		return nil
	}
	if text == "" {
		c.reported[k] = ""
		return nil
	}
	// Event messages are limited to 1 KiB by the API server.
	msg := text
	if len(msg) > 1024 {
		msg = msg[:1000] + " … (truncated)"
	}
	now := metav1.NewTime(c.now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: ing.Name + ".", Namespace: ing.Namespace},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "networking.k8s.io/v1", Kind: "Ingress",
			Namespace: ing.Namespace, Name: ing.Name, UID: ing.UID, ResourceVersion: ing.ResourceVersion,
		},
		Reason: "IngressProblems", Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: fieldManager},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := c.core.CoreV1().Events(ing.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("reporting Ingress %s problems: %w", k, err)
	}
	c.reported[k] = text
	return nil
}
