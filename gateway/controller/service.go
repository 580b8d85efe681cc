package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

const (
	// ServicePrefix starts the name of every Gateway's Service.
	ServicePrefix = "nodemesh-gateway-"
	// LBIPAMIPsAnnotation asks the load balancer for specific addresses:
	// Cilium's LB-IPAM annotation, so a cluster running Cilium's LB-IPAM
	// (or the lab's allocator, which reads the same) honours
	// spec.addresses.
	LBIPAMIPsAnnotation = "lbipam.cilium.io/ips"
	// ownedAnnotationsKey lists the annotation keys the controller copied
	// from spec.infrastructure, so one removed from the Gateway is removed
	// from the Service while keys other controllers add are kept.
	ownedAnnotationsKey = "gateway.nodemesh.io/infrastructure-annotations"
)

// ServiceName is the name of the LoadBalancer Service of Gateway gw (in
// its namespace). A name that would pass the 63 characters of a Service
// name is cut and completed with a hash of the whole, so distinct
// Gateways keep distinct Services.
func ServiceName(gw string) string { return serviceName(ServicePrefix, gw) }

// serviceName is prefix+name, cut to a Service name's 63 characters with a
// hash of name when longer.
func serviceName(prefix, name string) string {
	n := prefix + name
	if len(n) <= validation.DNS1035LabelMaxLength {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:4])
	return strings.TrimRight(n[:validation.DNS1035LabelMaxLength-len(h)-1], "-") + "-" + h
}

// desiredService is the Service a Gateway should have: type
// LoadBalancer, one port per distinct listener port and protocol, no
// selector (the node proxies serve it, no Pod does), the infrastructure
// labels and annotations, and the Gateway as controlling owner.
//
// cfg, when not nil, is the Gateway's class parameters (already checked
// by gateway.ClassParameters): its Service fields are set as asked.
func desiredService(gw *gwv1.Gateway, cfg *ciliumv2alpha1.CiliumGatewayClassConfig) *corev1.Service {
	labels := map[string]string{}
	annotations := map[string]string{}
	var owned []string
	if inf := gw.Spec.Infrastructure; inf != nil {
		for k, v := range inf.Labels {
			labels[string(k)] = string(v)
		}
		for k, v := range inf.Annotations {
			annotations[string(k)] = string(v)
			owned = append(owned, string(k))
		}
	}
	// A label value holds at most 63 characters; a longer Gateway name
	// goes without the label (the owner reference still ties them).
	if len(validation.IsValidLabelValue(gw.Name)) == 0 {
		labels[gwv1.GatewayNameLabelKey] = gw.Name
	}
	if ips := requestedIPs(gw); len(ips) > 0 {
		annotations[LBIPAMIPsAnnotation] = strings.Join(ips, ",")
		owned = append(owned, LBIPAMIPsAnnotation)
	}
	if len(owned) > 0 {
		sort.Strings(owned)
		annotations[ownedAnnotationsKey] = strings.Join(owned, ",")
	}
	seen := map[string]bool{}
	var ports []corev1.ServicePort
	for _, l := range gw.Spec.Listeners {
		proto := corev1.ProtocolTCP
		if l.Protocol == gwv1.UDPProtocolType {
			proto = corev1.ProtocolUDP
		}
		name := fmt.Sprintf("%s-%d", strings.ToLower(string(proto)), l.Port)
		if seen[name] {
			continue
		}
		seen[name] = true
		ports = append(ports, corev1.ServicePort{Name: name, Protocol: proto, Port: int32(l.Port)})
	}
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].Port != ports[j].Port {
			return ports[i].Port < ports[j].Port
		}
		return ports[i].Protocol < ports[j].Protocol
	})
	no := false
	yes := true
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: ServiceName(gw.Name), Namespace: gw.Namespace,
			Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway",
				Name: gw.Name, UID: gw.UID, Controller: &yes,
			}},
		},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: ports,
			// Nothing listens on node ports: traffic reaches the proxies
			// on the load-balancer address itself.
			AllocateLoadBalancerNodePorts: &no,
		},
	}
	if cfg != nil && cfg.Spec.Service != nil {
		sc := cfg.Spec.Service
		svc.Spec.ExternalTrafficPolicy = sc.ExternalTrafficPolicy
		svc.Spec.LoadBalancerClass = sc.LoadBalancerClass
		svc.Spec.IPFamilies = sc.IPFamilies
		svc.Spec.IPFamilyPolicy = sc.IPFamilyPolicy
		svc.Spec.TrafficDistribution = sc.TrafficDistribution
	}
	return svc
}

// requestedIPs are the IPAddress values of spec.addresses, in order.
func requestedIPs(gw *gwv1.Gateway) []string {
	var out []string
	for _, a := range gw.Spec.Addresses {
		if a.Type != nil && *a.Type != gwv1.IPAddressType || a.Value == "" {
			continue
		}
		if addr, err := netip.ParseAddr(a.Value); err == nil {
			out = append(out, addr.String())
		}
	}
	return out
}

// ownerGateway returns the Gateway that controls svc, if any.
func ownerGateway(svc *corev1.Service) (string, bool) {
	for _, o := range svc.OwnerReferences {
		if o.Controller != nil && *o.Controller && o.Kind == "Gateway" && strings.HasPrefix(o.APIVersion, gwv1.GroupName+"/") {
			return o.Name, true
		}
	}
	return "", false
}

// reconcileServices makes every Gateway of ours have its Service, removes
// the Services of Gateways that are no longer ours, and returns each
// Gateway's address as the load balancer reported it in the Service's
// status (or why there is none).
func (c *Controller) reconcileServices(ctx context.Context, snap *input.Snapshot, own []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string, []error) {
	existing := map[input.Key]*corev1.Service{}
	for _, s := range snap.Services {
		existing[input.Key{Namespace: s.Namespace, Name: s.Name}] = s
	}
	addrs := map[input.Key]netip.Addr{}
	problems := map[input.Key]string{}
	wanted := map[input.Key]bool{}
	classes := map[string]*ciliumv2alpha1.CiliumGatewayClassConfig{}
	for _, gc := range snap.GatewayClasses {
		if cfg, problem := gateway.ClassParameters(snap, gc, false); problem == "" {
			classes[gc.Name] = cfg
		}
	}
	var errs []error
	for _, gw := range own {
		gwKey := input.Key{Namespace: gw.Namespace, Name: gw.Name}
		want := desiredService(gw, classes[string(gw.Spec.GatewayClassName)])
		key := input.Key{Namespace: want.Namespace, Name: want.Name}
		wanted[key] = true
		cur := existing[key]
		if cur == nil {
			if _, err := c.core.CoreV1().Services(gw.Namespace).Create(ctx, want, metav1.CreateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
				errs = append(errs, fmt.Errorf("creating Service %s/%s: %w", want.Namespace, want.Name, err))
			}
			problems[gwKey] = fmt.Sprintf("waiting for the load balancer to assign an address to Service %s/%s", want.Namespace, want.Name)
			continue
		}
		if owner, ok := ownerGateway(cur); ok && owner == gw.Name && !ownedBy(cur, gw) {
			// Left by an earlier Gateway of the same name.
			err := c.core.CoreV1().Services(cur.Namespace).Delete(ctx, cur.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("deleting stale Service %s/%s: %w", cur.Namespace, cur.Name, err))
			}
			problems[gwKey] = fmt.Sprintf("waiting for the load balancer to assign an address to Service %s/%s", want.Namespace, want.Name)
			continue
		}
		if owner, ok := ownerGateway(cur); !ok || owner != gw.Name {
			problems[gwKey] = fmt.Sprintf("Service %s/%s exists and does not belong to this Gateway", cur.Namespace, cur.Name)
			continue
		}
		if !equality.Semantic.DeepEqual(cur.Spec.LoadBalancerClass, want.Spec.LoadBalancerClass) {
			// spec.loadBalancerClass cannot change once set: the Service
			// is replaced (created again on the next pass).
			err := c.core.CoreV1().Services(cur.Namespace).Delete(ctx, cur.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("replacing Service %s/%s for its new loadBalancerClass: %w", cur.Namespace, cur.Name, err))
			}
			problems[gwKey] = fmt.Sprintf("waiting for the load balancer to assign an address to Service %s/%s", want.Namespace, want.Name)
			continue
		}
		if next, changed := mergeService(cur, want); changed {
			if _, err := c.core.CoreV1().Services(gw.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("updating Service %s/%s: %w", cur.Namespace, cur.Name, err))
			}
		}
		addr, problem := serviceAddress(cur)
		if problem != "" {
			problems[gwKey] = problem
			continue
		}
		addrs[gwKey] = addr
	}
	for key, s := range existing {
		if _, ok := ownerGateway(s); !ok || wanted[key] || !strings.HasPrefix(s.Name, ServicePrefix) {
			continue
		}
		// Its Gateway is gone (the garbage collector would get there
		// too) or no longer of our class.
		err := c.core.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("deleting Service %s/%s: %w", s.Namespace, s.Name, err))
		}
	}
	return addrs, problems, errs
}

// ownedBy reports whether svc's controlling owner is this very Gateway
// (same UID), not an earlier one of the same name.
func ownedBy(svc *corev1.Service, gw *gwv1.Gateway) bool {
	for _, o := range svc.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			return o.UID == gw.UID
		}
	}
	return false
}

// mergeService returns cur updated to want: labels replaced, the
// annotations the controller owns set (and those it owned before but no
// longer wants removed, others kept), ports, type and node-port
// allocation. changed is false when cur already matches.
func mergeService(cur, want *corev1.Service) (*corev1.Service, bool) {
	next := cur.DeepCopy()
	next.Labels = maps.Clone(want.Labels)
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	if prev, ok := cur.Annotations[ownedAnnotationsKey]; ok {
		for _, k := range strings.Split(prev, ",") {
			delete(next.Annotations, k)
		}
		delete(next.Annotations, ownedAnnotationsKey)
	}
	maps.Copy(next.Annotations, want.Annotations)
	next.Spec.Type = want.Spec.Type
	next.Spec.AllocateLoadBalancerNodePorts = want.Spec.AllocateLoadBalancerNodePorts
	// Fields the API server defaults (Cluster, the cluster's family and
	// SingleStack) are left to it when the class does not ask.
	if want.Spec.ExternalTrafficPolicy != "" {
		next.Spec.ExternalTrafficPolicy = want.Spec.ExternalTrafficPolicy
	}
	if len(want.Spec.IPFamilies) > 0 {
		next.Spec.IPFamilies = want.Spec.IPFamilies
	}
	if want.Spec.IPFamilyPolicy != nil {
		next.Spec.IPFamilyPolicy = want.Spec.IPFamilyPolicy
	}
	next.Spec.TrafficDistribution = want.Spec.TrafficDistribution
	if !samePorts(cur.Spec.Ports, want.Spec.Ports) {
		next.Spec.Ports = want.Spec.Ports
	}
	changed := !maps.Equal(cur.Labels, next.Labels) || !maps.Equal(cur.Annotations, next.Annotations) ||
		cur.Spec.Type != next.Spec.Type ||
		!equality.Semantic.DeepEqual(cur.Spec.AllocateLoadBalancerNodePorts, next.Spec.AllocateLoadBalancerNodePorts) ||
		cur.Spec.ExternalTrafficPolicy != next.Spec.ExternalTrafficPolicy ||
		!slices.Equal(cur.Spec.IPFamilies, next.Spec.IPFamilies) ||
		!equality.Semantic.DeepEqual(cur.Spec.IPFamilyPolicy, next.Spec.IPFamilyPolicy) ||
		!equality.Semantic.DeepEqual(cur.Spec.TrafficDistribution, next.Spec.TrafficDistribution) ||
		!samePorts(cur.Spec.Ports, next.Spec.Ports)
	return next, changed
}

// samePorts compares the fields the controller sets (the API server
// fills in targetPort).
func samePorts(a, b []corev1.ServicePort) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.ServicePort) bool {
		return x.Name == y.Name && x.Protocol == y.Protocol && x.Port == y.Port
	})
}

// serviceAddress is the first IP address the load balancer put in the
// Service's status.
func serviceAddress(svc *corev1.Service) (netip.Addr, string) {
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" {
			continue
		}
		addr, err := netip.ParseAddr(ing.IP)
		if err != nil {
			return netip.Addr{}, fmt.Sprintf("Service %s/%s: load balancer address %q is not an IP address", svc.Namespace, svc.Name, ing.IP)
		}
		return addr, ""
	}
	if len(svc.Status.LoadBalancer.Ingress) > 0 {
		return netip.Addr{}, fmt.Sprintf("Service %s/%s: the load balancer gave only a hostname; Gateways need an IP address", svc.Namespace, svc.Name)
	}
	return netip.Addr{}, fmt.Sprintf("waiting for the load balancer to assign an address to Service %s/%s", svc.Namespace, svc.Name)
}
