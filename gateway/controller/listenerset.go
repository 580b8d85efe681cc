package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// writeListenerSets writes the status of every ListenerSet whose parent is
// one of our Gateways. Programmed (of the set and of each listener) is
// lowered to what the nodes report for the parent Gateway, as for the
// Gateway's own listeners: a node programs a Gateway with all its
// listeners, the sets' included.
func (c *Controller) writeListenerSets(ctx context.Context, objs []*gwv1.ListenerSet, res *gateway.Result, verdicts map[input.Key]nodeVerdict, now metav1.Time) []error {
	ours := make(map[input.Key]gwv1.ListenerSetStatus, len(res.ListenerSets))
	for _, s := range res.ListenerSets {
		ours[s.Key] = s.Status
	}
	var errs []error
	for _, ls := range objs {
		desired, mine := ours[input.Key{Namespace: ls.Namespace, Name: ls.Name}]
		if !mine {
			continue
		}
		desired = *desired.DeepCopy()
		if v, ok := verdicts[parentKey(ls)]; ok {
			applySetVerdict(&desired, ls.Generation, v)
		}
		if err := c.writeListenerSet(ctx, ls, desired, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// parentKey is the Gateway a ListenerSet names.
func parentKey(ls *gwv1.ListenerSet) input.Key {
	ns := ls.Namespace
	if p := ls.Spec.ParentRef.Namespace; p != nil && *p != "" {
		ns = string(*p)
	}
	return input.Key{Namespace: ns, Name: string(ls.Spec.ParentRef.Name)}
}

// applySetVerdict lowers a ListenerSet's Programmed conditions that
// translation set True to the nodes' verdict.
func applySetVerdict(st *gwv1.ListenerSetStatus, gen int64, v nodeVerdict) {
	lower := func(conds []metav1.Condition, reasonTrue string) {
		c := meta.FindStatusCondition(conds, string(gwv1.ListenerSetConditionProgrammed))
		if c == nil || c.Status != metav1.ConditionTrue {
			return
		}
		c.Status, c.Reason, c.Message, c.ObservedGeneration = v.status, v.reason, v.message, gen
		if v.status == metav1.ConditionTrue {
			c.Reason = reasonTrue
		}
	}
	lower(st.Conditions, string(gwv1.ListenerSetReasonProgrammed))
	for i := range st.Listeners {
		lower(st.Listeners[i].Conditions, string(gwv1.ListenerEntryReasonProgrammed))
	}
}

func (c *Controller) writeListenerSet(ctx context.Context, cur *gwv1.ListenerSet, desired gwv1.ListenerSetStatus, now metav1.Time) error {
	api := c.gw.GatewayV1().ListenerSets(cur.Namespace)
	name := cur.Namespace + "/" + cur.Name
	for attempt := 1; ; attempt++ {
		next := mergeListenerSet(cur.Status, desired, now)
		if equality.Semantic.DeepEqual(cur.Status, next) {
			return nil
		}
		cp := cur.DeepCopy()
		cp.Status = next
		_, err := api.UpdateStatus(ctx, cp, metav1.UpdateOptions{FieldManager: fieldManager})
		if done, err := settled(err, attempt, "ListenerSet", name); done {
			return err
		}
		fresh, err := api.Get(ctx, cur.Name, metav1.GetOptions{})
		if err != nil {
			return ignoreNotFound(err, "ListenerSet", name)
		}
		if fresh.Generation != cur.Generation {
			return nil // the next reconcile computes the new generation's status
		}
		cur = fresh
	}
}

// mergeListenerSet is mergeGateway for a ListenerSet: the set has one
// controller (its parent's), so desired replaces the status, with
// transition times carried over.
func mergeListenerSet(cur, desired gwv1.ListenerSetStatus, now metav1.Time) gwv1.ListenerSetStatus {
	out := gwv1.ListenerSetStatus{Conditions: mergeConditions(cur.Conditions, desired.Conditions, now)}
	for _, d := range desired.Listeners {
		var prev []metav1.Condition
		for _, c := range cur.Listeners {
			if c.Name == d.Name {
				prev = c.Conditions
				break
			}
		}
		d.Conditions = mergeConditions(prev, d.Conditions, now)
		out.Listeners = append(out.Listeners, d)
	}
	return out
}
