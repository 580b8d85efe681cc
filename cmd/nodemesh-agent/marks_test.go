package main

import (
	"testing"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// The proxy's routing listeners (GAMMA, CiliumEnvoyConfig, lb-l7) must
// carry the routing mark, never the policy listeners': the datapath would
// otherwise skip a same-node backend's L7 ingress rules.
func TestRoutingListenersGetTheRoutingMark(t *testing.T) {
	on, off := true, false
	for _, tc := range []struct {
		name               string
		dp, origSrc        *bool
		wantOrigSrc, wantR bool
	}{
		{"datapath, original source", &on, &on, true, true},
		{"datapath, no original source", &on, &off, false, true},
		{"no datapath", &off, &on, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &policyOptions{datapath: tc.dp, originalSource: tc.origSrc}
			for what, got := range map[string]struct {
				mark uint32
				want bool
			}{"original source": {o.originalSourceMark(), tc.wantOrigSrc}, "cluster": {o.routeMark(), tc.wantR}} {
				if !got.want {
					if got.mark != 0 {
						t.Errorf("%s mark %#x, want none", what, got.mark)
					}
					continue
				}
				if got.mark&datapath.MarkMagicMask != datapath.MarkFromProxyRoute || got.mark&^datapath.MarkMagicMask != 0 {
					t.Errorf("%s mark %#x, want the routing mark without identity", what, got.mark)
				}
			}
		})
	}
}

// Gateway and Ingress listeners apply no L7 ingress policy of a backend
// either: their mark is the routing one, with the ingress identity.
func TestGatewayListenersGetTheRoutingMark(t *testing.T) {
	got, err := gatewayUpstreamMark()
	want, _ := datapath.ProxyRouteMark(model.IdentityIngress)
	if err != nil || got != want || got&datapath.MarkMagicMask != datapath.MarkFromProxyRoute {
		t.Fatalf("Gateway upstream mark %#x (%v), want %#x", got, err, want)
	}
}
