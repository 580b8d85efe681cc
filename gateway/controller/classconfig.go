package controller

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// writeClassConfigs sets the Accepted condition of every
// CiliumGatewayClassConfig one of our GatewayClasses names: True when
// every field it sets can be honoured, else False/InvalidParameters
// naming the fields. Configs no class of ours names are left alone
// (another controller may own them).
func (c *Controller) writeClassConfigs(ctx context.Context, snap *input.Snapshot, now metav1.Time) []error {
	named := map[input.Key]bool{}
	for _, gc := range snap.GatewayClasses {
		p := gc.Spec.ParametersRef
		if gc.Spec.ControllerName != c.controller || p == nil || p.Namespace == nil ||
			string(p.Group) != ciliumv2alpha1.Group || string(p.Kind) != ciliumv2alpha1.GatewayClassConfigKind {
			continue
		}
		named[input.Key{Namespace: string(*p.Namespace), Name: p.Name}] = true
	}
	var errs []error
	for _, cfg := range snap.GatewayClassConfigs {
		if !named[input.Key{Namespace: cfg.Namespace, Name: cfg.Name}] {
			continue
		}
		cond := metav1.Condition{Type: string(gwv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
			Reason: string(gwv1.GatewayClassReasonAccepted), Message: "configuration is accepted", ObservedGeneration: cfg.Generation}
		if problems := gateway.CheckClassConfig(cfg, c.hostNetwork != nil); len(problems) > 0 {
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, string(gwv1.GatewayClassReasonInvalidParameters), truncate(strings.Join(problems, "; "))
		}
		next := mergeConditions(cfg.Status.Conditions, []metav1.Condition{cond}, now)
		if equality.Semantic.DeepEqual(cfg.Status.Conditions, next) {
			continue
		}
		cp := cfg.DeepCopy()
		cp.Status.Conditions = next
		cp.TypeMeta = metav1.TypeMeta{APIVersion: ciliumv2alpha1.SchemeGroupVersion.String(), Kind: ciliumv2alpha1.GatewayClassConfigKind}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cp)
		if err != nil {
			errs = append(errs, fmt.Errorf("encoding CiliumGatewayClassConfig %s/%s: %w", cfg.Namespace, cfg.Name, err))
			continue
		}
		// A conflict (the object changed since the informer saw it) is
		// retried by the next pass, which the change itself triggers.
		_, err = c.dyn.Resource(ciliumv2alpha1.CiliumGatewayClassConfigResource).Namespace(cfg.Namespace).
			UpdateStatus(ctx, &unstructured.Unstructured{Object: m}, metav1.UpdateOptions{FieldManager: fieldManager})
		if _, err := settled(err, maxAttempts, "CiliumGatewayClassConfig", cfg.Namespace+"/"+cfg.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
