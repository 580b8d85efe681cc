package agent

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodemesh/nodemesh/auth/manager"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// TestEventFlow: datapath events become L3/L4 flows with the identities
// on the right sides, the verdict and the reason.
func TestEventFlow(t *testing.T) {
	at := time.Unix(1000, 0)
	for _, tc := range []struct {
		name string
		e    model.Event
		want flow.Flow
	}{
		{"ingress policy drop",
			model.Event{Type: model.EventDrop, Reason: model.DropPolicy, Direction: model.Ingress, Time: at, Proto: 6,
				Source: netip.MustParseAddrPort("10.0.0.3:41000"), Destination: netip.MustParseAddrPort("10.0.0.2:80"),
				LocalIdentity: 257, RemoteIdentity: 258, IfIndex: 7},
			flow.Flow{Time: at, Direction: "ingress", Protocol: flow.ProtocolTCP, Verdict: flow.Dropped, Reason: "policy-denied",
				Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.3:41000"), Identity: 258},
				Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.2:80"), Identity: 257},
				Datapath:    &flow.Datapath{Event: flow.EventDrop, Reason: uint8(model.DropPolicy), IfIndex: 7}}},
		{"egress deny, mapped IPv4",
			model.Event{Type: model.EventDrop, Reason: model.DropPolicyDeny, Direction: model.Egress, Time: at, Proto: 17,
				Source: netip.MustParseAddrPort("[::ffff:10.0.0.3]:5353"), Destination: netip.MustParseAddrPort("[::ffff:192.0.2.1]:53"),
				LocalIdentity: 258, RemoteIdentity: 2},
			flow.Flow{Time: at, Direction: "egress", Protocol: flow.ProtocolUDP, Verdict: flow.Dropped, Reason: "policy-deny-rule",
				Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.3:5353"), Identity: 258},
				Destination: flow.Endpoint{Address: netip.MustParseAddrPort("192.0.2.1:53"), Identity: 2},
				Datapath:    &flow.Datapath{Event: flow.EventDrop, Reason: uint8(model.DropPolicyDeny)}}},
		{"redirect",
			model.Event{Type: model.EventRedirect, Reason: model.ReasonRedirected, Direction: model.Ingress, Time: at, Proto: 6,
				Source: netip.MustParseAddrPort("10.0.0.1:40000"), Destination: netip.MustParseAddrPort("10.0.0.2:80"),
				LocalIdentity: 257, RemoteIdentity: 256, ProxyPort: 15101},
			flow.Flow{Time: at, Direction: "ingress", Protocol: flow.ProtocolTCP, Verdict: flow.Redirected, Reason: "redirected",
				Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.1:40000"), Identity: 256},
				Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.2:80"), Identity: 257},
				Datapath:    &flow.Datapath{Event: flow.EventRedirect, Reason: uint8(model.ReasonRedirected), ProxyPort: 15101}}},
		{"auth required, ICMPv6",
			model.Event{Type: model.EventAuthRequired, Reason: model.DropAuthRequired, Direction: model.Ingress, Time: at, Proto: 58,
				Source: netip.MustParseAddrPort("[fd00::1]:0"), Destination: netip.MustParseAddrPort("[fd00::2]:128"),
				LocalIdentity: 257, RemoteIdentity: 256},
			flow.Flow{Time: at, Direction: "ingress", Protocol: flow.ProtocolICMPv6, Verdict: flow.Dropped, Reason: "auth-required",
				Source:      flow.Endpoint{Address: netip.MustParseAddrPort("[fd00::1]:0"), Identity: 256},
				Destination: flow.Endpoint{Address: netip.MustParseAddrPort("[fd00::2]:128"), Identity: 257},
				Datapath:    &flow.Datapath{Event: flow.EventAuthRequired, Reason: uint8(model.DropAuthRequired)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, EventFlow(tc.e), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

// events replays a fixed list, then reports the source closed.
type events struct {
	list []model.Event
	errs []error
}

func (e *events) Read() (model.Event, error) {
	if len(e.errs) > 0 {
		err := e.errs[0]
		e.errs = e.errs[1:]
		return model.Event{}, err
	}
	if len(e.list) == 0 {
		return model.Event{}, io.EOF
	}
	ev := e.list[0]
	e.list = e.list[1:]
	return ev, nil
}

// TestRecordEvents: events go into the store; a malformed record is
// skipped; any other error ends recording and is returned.
func TestRecordEvents(t *testing.T) {
	store := flow.NewStore()
	src := &events{
		errs: []error{wrapBad{}},
		list: []model.Event{{Type: model.EventDrop, Reason: model.DropPolicy, Direction: model.Ingress, Proto: 6,
			Source: netip.MustParseAddrPort("10.0.0.1:1"), Destination: netip.MustParseAddrPort("10.0.0.2:2")}},
	}
	if err := RecordEvents(src, store, slog.New(slog.DiscardHandler)); !errors.Is(err, io.EOF) {
		t.Fatalf("RecordEvents returned %v, want the source's EOF", err)
	}
	got := store.Query(flow.Filter{}, 0)
	if len(got) != 1 || got[0].Verdict != flow.Dropped || got[0].Datapath == nil {
		t.Fatalf("stored %+v", got)
	}
}

type wrapBad struct{}

func (wrapBad) Error() string { return "decoding: " + model.ErrBadEvent.Error() }
func (wrapBad) Unwrap() error { return model.ErrBadEvent }

// TestRequestAuth: through the one reader, every event still reaches the
// flow store, and each SPIFFE auth-required event (only those) is also
// requested from the auth manager with its key.
func TestRequestAuth(t *testing.T) {
	client, server := netip.MustParseAddrPort("10.244.1.20:40000"), netip.MustParseAddrPort("10.244.2.10:80")
	authReq := model.Event{Type: model.EventAuthRequired, Reason: model.DropAuthRequired, Direction: model.Ingress, Proto: 6, Source: client, Destination: server,
		LocalIdentity: 256, RemoteIdentity: 300, RemoteNode: 2, Auth: model.AuthSPIFFE}
	otherAuth := authReq
	otherAuth.Auth = model.AuthSPIFFE + 1
	drop := model.Event{Type: model.EventDrop, Reason: model.DropPolicy, Direction: model.Ingress, Proto: 6, Source: client, Destination: server,
		LocalIdentity: 256, RemoteIdentity: 300, RemoteNode: 2, Auth: model.AuthSPIFFE}
	src := &events{errs: []error{wrapBad{}}, list: []model.Event{drop, authReq, otherAuth}}
	var requested []manager.Key
	store := flow.NewStore()
	if err := RecordEvents(RequestAuth(src, func(k manager.Key) { requested = append(requested, k) }), store,
		slog.New(slog.DiscardHandler)); !errors.Is(err, io.EOF) {
		t.Fatalf("RecordEvents returned %v, want the source's EOF", err)
	}
	want := []manager.Key{{Local: 256, Remote: 300, RemoteNode: 2}}
	if diff := cmp.Diff(want, requested); diff != "" {
		t.Fatalf("requested (-want +got):\n%s", diff)
	}
	got := store.Query(flow.Filter{}, 0)
	if len(got) != 3 {
		t.Fatalf("stored %d flows, want all 3 events: %+v", len(got), got)
	}
	for _, f := range got {
		if f.Verdict != flow.Dropped {
			t.Fatalf("flow %+v not DROPPED", f)
		}
	}
}
