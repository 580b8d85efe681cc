package controller

import (
	"context"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// writeBackendTLSPolicies writes our ancestors into the status of every
// BackendTLSPolicy the translation gave a status, or that still carries
// one of ours (so a policy no route of ours uses any more loses them).
// Other controllers' ancestors are kept.
func (c *Controller) writeBackendTLSPolicies(ctx context.Context, objs []*gwv1.BackendTLSPolicy, res *gateway.Result, now metav1.Time) []error {
	ours := map[input.Key][]gwv1.PolicyAncestorStatus{}
	for _, s := range res.Policies {
		if s.Kind == "BackendTLSPolicy" {
			ours[s.Key] = s.Status.Ancestors
		}
	}
	var errs []error
	for _, p := range objs {
		desired, mine := ours[input.Key{Namespace: p.Namespace, Name: p.Name}]
		if !mine && !hasAncestorOf(p.Status.Ancestors, c.controller) {
			continue
		}
		if err := c.writeBackendTLSPolicy(ctx, p, desired, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (c *Controller) writeBackendTLSPolicy(ctx context.Context, cur *gwv1.BackendTLSPolicy, desired []gwv1.PolicyAncestorStatus, now metav1.Time) error {
	name := cur.Namespace + "/" + cur.Name
	api := c.gw.GatewayV1().BackendTLSPolicies(cur.Namespace)
	for attempt := 1; ; attempt++ {
		next := mergePolicy(cur.Status, desired, c.controller, now)
		if equality.Semantic.DeepEqual(cur.Status, next) {
			return nil
		}
		cp := cur.DeepCopy()
		cp.Status = next
		_, err := api.UpdateStatus(ctx, cp, metav1.UpdateOptions{FieldManager: fieldManager})
		if done, err := settled(err, attempt, "BackendTLSPolicy", name); done {
			return err
		}
		fresh, err := api.Get(ctx, cur.Name, metav1.GetOptions{})
		if err != nil {
			return ignoreNotFound(err, "BackendTLSPolicy", name)
		}
		if fresh.Generation != cur.Generation {
			return nil
		}
		cur = fresh
	}
}

// mergePolicy keeps other controllers' ancestors and replaces ours with
// desired, carrying over transition times of unchanged conditions.
func mergePolicy(cur gwv1.PolicyStatus, desired []gwv1.PolicyAncestorStatus, controller gwv1.GatewayController, now metav1.Time) gwv1.PolicyStatus {
	// The API accepts at most 16 ancestors.
	ancestors := mergeOurs(cur.Ancestors, desired, now, maxAncestors,
		func(a *gwv1.PolicyAncestorStatus) bool { return a.ControllerName == controller },
		func(a, b *gwv1.PolicyAncestorStatus) bool { return reflect.DeepEqual(a.AncestorRef, b.AncestorRef) },
		func(a *gwv1.PolicyAncestorStatus) *[]metav1.Condition { return &a.Conditions })
	return gwv1.PolicyStatus{Ancestors: ancestors}
}

const maxAncestors = 16

func hasAncestorOf(as []gwv1.PolicyAncestorStatus, controller gwv1.GatewayController) bool {
	for _, a := range as {
		if a.ControllerName == controller {
			return true
		}
	}
	return false
}
