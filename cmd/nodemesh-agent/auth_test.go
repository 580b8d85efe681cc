package main

import (
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// TestAuthDropFlow: an auth-required drop becomes a DROPPED flow with the
// peer on the right side for either direction.
func TestAuthDropFlow(t *testing.T) {
	client, server := netip.MustParseAddrPort("10.244.1.20:40000"), netip.MustParseAddrPort("10.244.2.10:80")
	for _, tc := range []struct {
		name     string
		dir      model.Direction
		src, dst uint32
	}{
		// On the server's node: the local workload is the destination.
		{"ingress", model.Ingress, 300, 256},
		// On the client's node: the local workload is the source.
		{"egress", model.Egress, 256, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := datapath.Event{Type: datapath.EventAuthRequired, Direction: tc.dir, Proto: 6, Source: client, Destination: server,
				LocalIdentity: 256, RemoteIdentity: 300}
			f := authDropFlow(e)
			if f.Verdict != flow.Dropped || f.Reason != "auth-required" || f.Protocol != flow.ProtocolTCP || f.Direction != tc.name ||
				f.Source.Address != client || f.Destination.Address != server || f.Source.Identity != tc.src || f.Destination.Identity != tc.dst {
				t.Fatalf("flow %+v", f)
			}
		})
	}
}
