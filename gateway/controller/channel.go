package controller

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/gateway-api/pkg/consts"
)

// Gateway API release channels, as the CRDs' channel annotation names
// them.
const (
	ChannelStandard     = "standard"
	ChannelExperimental = "experimental"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstalledChannel returns the release channel of the installed HTTPRoute
// CRD (its gateway.networking.k8s.io/channel annotation): fields of the
// experimental channel, such as HTTPRoute retries, exist in the cluster
// only with experimental CRDs, and the API server drops them otherwise.
// Callers read it once at start; a changed channel takes a restart.
func InstalledChannel(ctx context.Context, dyn dynamic.Interface) (string, error) {
	crd, err := dyn.Resource(crdResource).Get(ctx, "httproutes.gateway.networking.k8s.io", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the HTTPRoute CRD: %w", err)
	}
	switch ch := crd.GetAnnotations()[consts.ChannelAnnotation]; ch {
	case ChannelStandard, ChannelExperimental:
		return ch, nil
	default:
		return "", fmt.Errorf("reading the HTTPRoute CRD: unknown channel %q in annotation %s", ch, consts.ChannelAnnotation)
	}
}
