package server

import (
	"errors"
	"slices"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
)

// nack answers resp's type with a rejection naming nonce.
func (r *rawStream) nack(typeURL, version, nonce, msg string) {
	r.t.Helper()
	req := &discoveryv3.DiscoveryRequest{Node: r.node, TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce,
		ErrorDetail: &status.Status{Code: 3, Message: msg}}
	if err := r.stream.Send(req); err != nil {
		r.t.Fatal(err)
	}
}

// waitNode waits, on the server's change events, until ok accepts the
// status of node.
func waitNode(t *testing.T, s *Server, node string, ok func(NodeStatus) bool) NodeStatus {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		changed := s.Changed()
		for _, n := range s.Status() {
			if n.ID == node && ok(n) {
				return n
			}
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("node %s never reached the expected state: %+v", node, s.Status())
		}
	}
}

// TestNackOfStaleOrUnknownNonceIsIgnored: a state-of-the-world answer
// counts only for the last response of its type on the stream. A NACK
// naming a nonce the server never sent, or an older response's, is not
// recorded (Envoy-style servers drop such requests); a NACK of the last
// response is, with the resources it changed.
func TestNackOfStaleOrUnknownNonceIsIgnored(t *testing.T) {
	s, path := startServer(t)
	update(t, s, resources(t, spec{listeners: []string{"l0", "l1"}}))
	r := openRaw(t, path, "raw")
	r.request(resource.ListenerType)
	first := r.recv()

	// A rejection of a response that was never sent, then the real
	// acceptance: the stream is answered in order, so once the ACK is in
	// the table the invented NACK has been looked at.
	r.nack(resource.ListenerType, first.VersionInfo, "no-such-nonce", "invented rejection")
	r.request(resource.ListenerType)
	n := waitNode(t, s, "raw", func(n NodeStatus) bool {
		return typeStatus(n, resource.ListenerType).VersionAcked == first.VersionInfo
	})
	if nk := typeStatus(n, resource.ListenerType).LastNack; nk != nil {
		t.Fatalf("a NACK of an unknown nonce was recorded: %+v", nk)
	}

	// A new listener: the next response, accepted. A rejection of the
	// previous response arriving after that (a stale nonce) is ignored:
	// the ACK that follows it is in the table, the NACK is not.
	update(t, s, resources(t, spec{listeners: []string{"l0", "l1", "l2"}}))
	second := r.recv()
	if second.Nonce == first.Nonce || second.VersionInfo == first.VersionInfo {
		t.Fatalf("no new listener response: %v", second)
	}
	r.request(resource.ListenerType)
	waitNode(t, s, "raw", func(n NodeStatus) bool {
		return typeStatus(n, resource.ListenerType).VersionAcked == second.VersionInfo
	})
	before := time.Now()
	// As a proxy sends it: a NACK carries the last version it accepted
	// (with an older version the cache would answer again, racing the ACK).
	r.nack(resource.ListenerType, second.VersionInfo, first.Nonce, "stale rejection")
	r.request(resource.ListenerType)
	n = waitNode(t, s, "raw", func(n NodeStatus) bool { return typeStatus(n, resource.ListenerType).AckedAt.After(before) })
	if nk := typeStatus(n, resource.ListenerType).LastNack; nk != nil {
		t.Fatalf("a NACK of a stale nonce was recorded: %+v", nk)
	}

	// A rejection of the last response is recorded, with its resources.
	update(t, s, resources(t, spec{listeners: []string{"l0", "l1", "l2", "l3"}}))
	third := r.recv()
	r.nack(resource.ListenerType, second.VersionInfo, third.Nonce, "listener l3: bad field")
	n = waitNode(t, s, "raw", func(n NodeStatus) bool { return typeStatus(n, resource.ListenerType).LastNack != nil })
	nk := typeStatus(n, resource.ListenerType).LastNack
	if nk.Nonce != third.Nonce || nk.Version != third.VersionInfo || nk.Message != "listener l3: bad field" {
		t.Fatalf("recorded NACK %+v, want the rejection of nonce %s (version %s)", nk, third.Nonce, third.VersionInfo)
	}
	if !slices.Equal(nk.Resources, []string{"l0", "l1", "l2", "l3"}) {
		t.Fatalf("NACK resources %v, want all four listeners", nk.Resources)
	}

	// The counters (metrics) saw three listener responses, one real
	// rejection (not the invented or stale ones) and the acceptances, and
	// name the version being served.
	var lds TypeCounters
	for _, tc := range s.Counters().Types {
		if tc.TypeURL == resource.ListenerType {
			lds = tc
		}
	}
	if lds.Short != "LDS" || lds.Pushes != 3 || lds.Nacks != 1 || lds.Acks < 2 || lds.Version != third.VersionInfo {
		t.Fatalf("LDS counters %+v, want 3 pushes, 1 NACK, at least 2 ACKs, version %s", lds, third.VersionInfo)
	}
}

// TestNackNamesTheChangedResources: a rejected state-of-the-world
// response carries every resource of its type; the NACK names those the
// proxy did not already run (the rejected one is among them), so the
// rejection can be traced to the objects they were made for. Delta
// responses carry only changes.
func TestNackNamesTheChangedResources(t *testing.T) {
	s, path := startServer(t)
	update(t, s, resources(t, spec{listeners: []string{"l0", "l1"}}))
	r := openRaw(t, path, "raw")
	r.request(resource.ListenerType)
	r.recv()
	r.request(resource.ListenerType) // ACK

	// l1 gets TLS (other content), l2 is new, l0 stays.
	res := resources(t, spec{listeners: []string{"l0", "l1", "l2"}})
	tls := resources(t, spec{listeners: []string{"l1"}, secret: "s"})
	res.Listeners[1], res.Secrets = tls.Listeners[0], tls.Secrets
	update(t, s, res)
	rejected := r.recv()
	r.nack(resource.ListenerType, "", rejected.Nonce, "bad listener")
	n := waitNode(t, s, "raw", func(n NodeStatus) bool { return typeStatus(n, resource.ListenerType).LastNack != nil })
	nk := typeStatus(n, resource.ListenerType).LastNack
	if !slices.Equal(nk.Resources, []string{"l0", "l1", "l2"}) || !slices.Equal(nk.Changed, []string{"l1", "l2"}) {
		t.Fatalf("NACK resources %v, changed %v; want l1 and l2 changed of the three", nk.Resources, nk.Changed)
	}

	// Delta: the rejected response is the change.
	dialConnected(t, s, path, proxyOptions{NodeID: "delta", Delta: true, Apply: func(typeURL string, res map[string]any) error {
		if _, ok := res["l3"]; ok && typeURL == resource.ListenerType {
			return errors.New("l3 rejected by test")
		}
		return nil
	}})
	waitNode(t, s, "delta", func(n NodeStatus) bool { return typeStatus(n, resource.ListenerType).VersionAcked != "" })
	more := resources(t, spec{listeners: []string{"l0", "l1", "l2", "l3"}})
	more.Listeners[1], more.Secrets = res.Listeners[1], res.Secrets
	update(t, s, more)
	n = waitNode(t, s, "delta", func(n NodeStatus) bool { return typeStatus(n, resource.ListenerType).LastNack != nil })
	if nk := typeStatus(n, resource.ListenerType).LastNack; !slices.Equal(nk.Changed, []string{"l3"}) {
		t.Fatalf("delta NACK changed %v, want [l3]", nk.Changed)
	}
}
