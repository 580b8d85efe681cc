package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// MeshFeatures is what nodemesh claims in the status of its XMesh
// objects (gateway.networking.x-k8s.io, experimental channel), where the
// conformance suite reads the mesh features (it drops mesh features from
// GatewayClass status): like SupportedFeatures, exactly the mesh
// features whose conformance tests pass in `make conformance` (MESH-HTTP,
// core and extended: every extended mesh feature of suite v1.6.3). Add a
// feature here only together with the passing report.
var MeshFeatures = []features.FeatureName{
	features.SupportMesh,
	features.SupportMeshClusterIPMatching,
	features.SupportMeshConsumerRoute,
	features.SupportMeshHTTPRouteRewritePath,
	features.SupportMeshHTTPRouteSchemeRedirect,
	features.SupportMeshHTTPRouteRedirectPort,
	features.SupportMeshHTTPRouteRedirectPath,
	features.SupportMeshHTTPRouteBackendRequestHeaderModification,
	features.SupportMeshHTTPRouteQueryParamMatching,
	features.SupportMeshHTTPRouteNamedRouteRule,
}

// maxMeshes bounds the XMesh objects one reconcile reads.
const maxMeshes = 100

// reconcileMeshes accepts every XMesh naming this controller and lists
// its mesh features. Without the XMesh CRD (standard channel) there is
// nothing to do. XMeshes are few and cheap, so they are listed on each
// reconcile (every event and resync) rather than watched.
func (c *Controller) reconcileMeshes(ctx context.Context, now metav1.Time) []error {
	cl := c.gw.ExperimentalV1alpha1().XMeshes()
	list, err := cl.List(ctx, metav1.ListOptions{Limit: maxMeshes})
	switch {
	case apierrors.IsNotFound(err):
		return nil // no XMesh CRD
	case err != nil:
		return []error{fmt.Errorf("listing XMeshes: %w", err)}
	}
	var errs []error
	for i := range list.Items {
		m := &list.Items[i]
		if m.Spec.ControllerName != c.controller {
			continue
		}
		desired := gwxv1a1.MeshStatus{
			Conditions: []metav1.Condition{{
				Type: string(gwxv1a1.MeshConditionAccepted), Status: metav1.ConditionTrue,
				Reason: string(gwxv1a1.MeshReasonAccepted), Message: "accepted by " + string(c.controller),
				ObservedGeneration: m.Generation,
			}},
			SupportedFeatures: c.meshFeatures,
		}
		if m.Spec.ParametersRef != nil {
			// nodemesh has no mesh parameters: refuse rather than
			// ignore what the object asks for.
			desired.Conditions[0].Status = metav1.ConditionFalse
			desired.Conditions[0].Reason = string(gwxv1a1.MeshReasonInvalidParameters)
			desired.Conditions[0].Message = "spec.parametersRef: nodemesh takes no mesh parameters"
		}
		if err := c.writeMesh(ctx, m, desired, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (c *Controller) writeMesh(ctx context.Context, cur *gwxv1a1.XMesh, desired gwxv1a1.MeshStatus, now metav1.Time) error {
	cl := c.gw.ExperimentalV1alpha1().XMeshes()
	for attempt := 1; ; attempt++ {
		next := gwxv1a1.MeshStatus{
			Conditions:        mergeConditions(cur.Status.Conditions, desired.Conditions, now),
			SupportedFeatures: desired.SupportedFeatures,
		}
		if equality.Semantic.DeepEqual(cur.Status, next) {
			return nil
		}
		cp := cur.DeepCopy()
		cp.Status = next
		_, err := cl.UpdateStatus(ctx, cp, metav1.UpdateOptions{FieldManager: fieldManager})
		if done, err := settled(err, attempt, "XMesh", cur.Name); done {
			return err
		}
		fresh, err := cl.Get(ctx, cur.Name, metav1.GetOptions{})
		if err != nil {
			return ignoreNotFound(err, "XMesh", cur.Name)
		}
		cur = fresh
	}
}
