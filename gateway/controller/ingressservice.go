package controller

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// Ingress Services (WithGatewayServices): each Ingress load balancer gets
// a Service of type LoadBalancer and takes its address from the load
// balancer, as Cilium's Ingress controller does (see doc.go).

const (
	// IngressServicePrefix starts the name of a dedicated Ingress's
	// Service (in the Ingress's namespace).
	IngressServicePrefix = "nodemesh-ingress-"
	// SharedIngressServiceName is the Service of the shared Ingress load
	// balancer, in the controller's namespace (WithSharedIngressNamespace).
	SharedIngressServiceName = "nodemesh-ingress"
	// IngressNameLabel names the Ingress a dedicated Service serves.
	IngressNameLabel = "ingress.nodemesh.io/name"
	// SharedIngressLabel marks the shared Ingress Service, so the
	// controller finds and removes it once no Ingress is shared.
	SharedIngressLabel = "ingress.nodemesh.io/shared"
)

// IngressLBAnnotationPrefixes are the Ingress annotations copied to its
// dedicated Service: Cilium's default list for
// ingressController.ingressLBAnnotationPrefixes, so a cloud load
// balancer's or LB-IPAM's settings written on the Ingress reach the
// Service they are for.
var IngressLBAnnotationPrefixes = []string{"lbipam.cilium.io/", "nodeipam.cilium.io/", "service.beta.kubernetes.io/", "service.kubernetes.io/", "cloud.google.com/"}

// WithSharedIngressNamespace sets the namespace of the shared Ingress
// Service (default kube-system, where Cilium puts its own).
func WithSharedIngressNamespace(ns string) Option {
	return func(c *Controller) { c.sharedIngressNS = ns }
}

// IngressServiceName is the Service of dedicated Ingress ing (in its
// namespace), cut to 63 characters with a hash as ServiceName is.
func IngressServiceName(ing string) string { return serviceName(IngressServicePrefix, ing) }

// desiredIngressService is the Service of one Ingress load balancer:
// type LoadBalancer on the Ingress ports, no selector and no node ports
// (the node proxies listen on the load-balancer address itself). A
// dedicated one (ing set) carries the Ingress's load-balancer
// annotations and the Ingress as controlling owner.
func (c *Controller) desiredIngressService(ing *networkingv1.Ingress) *corev1.Service {
	http, https := c.ingress.Ports()
	no := false
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{}, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: http},
				{Name: "https", Protocol: corev1.ProtocolTCP, Port: https},
			},
			AllocateLoadBalancerNodePorts: &no,
		},
	}
	if ing == nil {
		svc.Name, svc.Namespace = SharedIngressServiceName, c.sharedIngressNamespace()
		svc.Labels[SharedIngressLabel] = "true"
		return svc
	}
	svc.Name, svc.Namespace = IngressServiceName(ing.Name), ing.Namespace
	if len(validation.IsValidLabelValue(ing.Name)) == 0 {
		svc.Labels[IngressNameLabel] = ing.Name
	}
	var owned []string
	for k, v := range ing.Annotations {
		for _, p := range IngressLBAnnotationPrefixes {
			if strings.HasPrefix(k, p) {
				svc.Annotations[k] = v
				owned = append(owned, k)
				break
			}
		}
	}
	if len(owned) > 0 {
		sort.Strings(owned)
		svc.Annotations[ownedAnnotationsKey] = strings.Join(owned, ",")
	}
	yes := true
	svc.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "Ingress",
		Name: ing.Name, UID: ing.UID, Controller: &yes,
	}}
	return svc
}

func (c *Controller) sharedIngressNamespace() string {
	if c.sharedIngressNS == "" {
		return "kube-system"
	}
	return c.sharedIngressNS
}

// ownerIngress returns the Ingress that controls svc, if any.
func ownerIngress(svc *corev1.Service) (metav1.OwnerReference, bool) {
	for _, o := range svc.OwnerReferences {
		if o.Controller != nil && *o.Controller && o.Kind == "Ingress" && o.APIVersion == networkingv1.SchemeGroupVersion.String() {
			return o, true
		}
	}
	return metav1.OwnerReference{}, false
}

// reconcileIngressServices makes every Ingress load balancer in reqs
// (IngressAddressRequests' stand-ins; none in host-network mode) have its
// Service, removes Services no Ingress needs any more, and returns each
// stand-in's address as the load balancer reported it, or why there is
// none.
func (c *Controller) reconcileIngressServices(ctx context.Context, snap *input.Snapshot, reqs []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string, []error) {
	existing := map[input.Key]*corev1.Service{}
	for _, s := range snap.Services {
		existing[input.Key{Namespace: s.Namespace, Name: s.Name}] = s
	}
	ingresses := map[input.Key]*networkingv1.Ingress{}
	for _, ing := range snap.Ingresses {
		ingresses[input.Key{Namespace: ing.Namespace, Name: ing.Name}] = ing
	}
	addrs := map[input.Key]netip.Addr{}
	problems := map[input.Key]string{}
	wanted := map[input.Key]bool{}
	var errs []error
	for _, req := range reqs {
		lbKey := input.Key{Namespace: req.Namespace, Name: req.Name}
		var ing *networkingv1.Ingress
		if k, ok := gateway.IngressOfAddressKey(lbKey); ok {
			if ing = ingresses[k]; ing == nil {
				continue
			}
		}
		want := c.desiredIngressService(ing)
		key := input.Key{Namespace: want.Namespace, Name: want.Name}
		wanted[key] = true
		waiting := fmt.Sprintf("waiting for the load balancer to assign an address to Service %s", key)
		cur := existing[key]
		if cur == nil {
			if _, err := c.core.CoreV1().Services(want.Namespace).Create(ctx, want, metav1.CreateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
				errs = append(errs, fmt.Errorf("creating Service %s: %w", key, err))
			}
			problems[lbKey] = waiting
			continue
		}
		if !c.ingressServiceIsOurs(cur, ing) {
			if o, ok := ownerIngress(cur); ok && ing != nil && o.Name == ing.Name {
				// Left by an earlier Ingress of the same name.
				c.deleteService(ctx, cur, &errs)
				problems[lbKey] = waiting
				continue
			}
			problems[lbKey] = fmt.Sprintf("Service %s exists and was not made for this Ingress load balancer", key)
			continue
		}
		if next, changed := mergeService(cur, want); changed {
			if _, err := c.core.CoreV1().Services(cur.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("updating Service %s: %w", key, err))
			}
		}
		addr, problem := serviceAddress(cur)
		if problem != "" {
			problems[lbKey] = problem
			continue
		}
		addrs[lbKey] = addr
	}
	for key, s := range existing {
		if wanted[key] {
			continue
		}
		_, dedicated := ownerIngress(s)
		dedicated = dedicated && strings.HasPrefix(s.Name, IngressServicePrefix)
		shared := s.Name == SharedIngressServiceName && s.Labels[SharedIngressLabel] == "true"
		if dedicated || shared {
			// Its Ingress is gone (the garbage collector would get there
			// too), shared now, or no longer of our class; or no
			// Ingress is shared any more.
			c.deleteService(ctx, s, &errs)
		}
	}
	return addrs, problems, errs
}

// ingressServiceIsOurs reports whether cur is the Service the controller
// made for this load balancer: the shared one carries the shared label,
// a dedicated one is controlled by this very Ingress (same UID).
func (c *Controller) ingressServiceIsOurs(cur *corev1.Service, ing *networkingv1.Ingress) bool {
	if ing == nil {
		_, owned := ownerIngress(cur)
		return cur.Labels[SharedIngressLabel] == "true" && !owned
	}
	o, ok := ownerIngress(cur)
	return ok && o.UID == ing.UID
}

func (c *Controller) deleteService(ctx context.Context, s *corev1.Service, errs *[]error) {
	err := c.core.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		*errs = append(*errs, fmt.Errorf("deleting Service %s/%s: %w", s.Namespace, s.Name, err))
	}
}

// ingressServiceAddresses are the load-balancer addresses of the Ingress
// Services the controller made: an Ingress showing one of them that is no
// longer ours shows an address we wrote.
func ingressServiceAddresses(snap *input.Snapshot) map[string]bool {
	out := map[string]bool{}
	for _, s := range snap.Services {
		_, dedicated := ownerIngress(s)
		if !(dedicated && strings.HasPrefix(s.Name, IngressServicePrefix)) && s.Labels[SharedIngressLabel] != "true" {
			continue
		}
		for _, lb := range s.Status.LoadBalancer.Ingress {
			if lb.IP != "" {
				out[lb.IP] = true
			}
		}
	}
	return out
}
