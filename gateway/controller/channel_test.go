package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// TestInstalledChannel reads the channel of the CRDs a real API server
// holds: standard, then experimental once those CRDs replace them; the
// retry features are claimed only with the latter.
func TestInstalledChannel(t *testing.T) {
	c := controlplane.ForTest(t, ChannelStandard)
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if ch, err := InstalledChannel(ctx, dyn); err != nil || ch != ChannelStandard {
		t.Fatalf("standard CRDs: channel %q, %v", ch, err)
	}
	if slices.Contains(FeaturesFor(ChannelStandard, false), features.SupportHTTPRouteRetry) {
		t.Errorf("HTTPRouteRetry claimed with standard CRDs, which drop rules[].retry")
	}
	// The standard channel's admission policy refuses experimental CRDs
	// over standard ones unless it is removed first, as its message says.
	for _, r := range []string{"validatingadmissionpolicybindings", "validatingadmissionpolicies"} {
		gvr := schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: r}
		if err := dyn.Resource(gvr).Delete(ctx, "safe-upgrades.gateway.networking.k8s.io", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	crds, err := c.Binaries.GatewayCRDs(ChannelExperimental)
	if err != nil {
		t.Fatal(err)
	}
	// The API server drops the policy from its admission cache a moment
	// after the delete.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		err := controlplane.Apply(ctx, c.Config, crds)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	if ch, err := InstalledChannel(ctx, dyn); err != nil || ch != ChannelExperimental {
		t.Fatalf("experimental CRDs: channel %q, %v", ch, err)
	}
	if got := FeaturesFor(ChannelExperimental, false); !slices.Contains(got, features.SupportHTTPRouteRetry) || !slices.Contains(got, features.SupportHTTPRouteCORS) {
		t.Errorf("experimental features %v lack HTTPRouteRetry or the standard ones", got)
	}
}
