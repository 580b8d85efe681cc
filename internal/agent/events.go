package agent

import (
	"errors"
	"log/slog"
	"net/netip"

	"github.com/nodemesh/nodemesh/auth/manager"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// EventSource is the datapath's event ring buffer (datapath.EventReader).
// Read blocks until an event arrives; a malformed record yields an error
// wrapping model.ErrBadEvent, a closed source any other error.
type EventSource interface {
	Read() (model.Event, error)
}

// RecordEvents adds every event r delivers to store as an L3/L4 flow,
// skipping malformed records, until r fails otherwise (closed: the agent
// is stopping); it returns that error. It runs on its own goroutine;
// Store.Add never blocks on readers, so the ring buffer is drained as fast
// as the kernel fills it.
func RecordEvents(r EventSource, store *flow.Store, log *slog.Logger) error {
	for {
		e, err := r.Read()
		switch {
		case err == nil:
			store.Add(EventFlow(e))
		case errors.Is(err, model.ErrBadEvent):
			log.Debug("skipping a datapath event", "error", err)
		default:
			return err
		}
	}
}

// RequestAuth wraps r so that every auth-required event it delivers is
// also handed to request, as the auth manager's key, before the caller
// sees it: the on-demand path of mutual authentication. The ring buffer
// has one reader (each record goes to whichever reader takes it), so the
// auth manager taps the flow recorder's reader rather than opening its
// own. request must not block; manager.Request drops (and counts) when
// its queue is full.
func RequestAuth(r EventSource, request func(manager.Key)) EventSource {
	return authTap{r, request}
}

type authTap struct {
	EventSource
	request func(manager.Key)
}

func (t authTap) Read() (model.Event, error) {
	e, err := t.EventSource.Read()
	if err == nil && e.Type == model.EventAuthRequired {
		if k, ok := ManagerKey(e.AuthKey()); ok {
			t.request(k)
		}
	}
	return e, err
}

// protocols names the IP protocols a flow records.
var protocols = map[uint8]string{
	1: flow.ProtocolICMP, 6: flow.ProtocolTCP, 17: flow.ProtocolUDP, 58: flow.ProtocolICMPv6, 132: flow.ProtocolSCTP,
}

// EventFlow turns a datapath event into a flow: the packet's addresses,
// the identities the datapath judged with (the local workload's and the
// peer's, placed by direction), the verdict (a redirect is REDIRECTED,
// anything else a drop) and the reason.
func EventFlow(e model.Event) flow.Flow {
	f := flow.Flow{
		Time:        e.Time,
		Direction:   e.Direction.String(),
		Source:      flow.Endpoint{Address: unmapped(e.Source)},
		Destination: flow.Endpoint{Address: unmapped(e.Destination)},
		Protocol:    protocols[e.Proto],
		Verdict:     flow.Dropped,
		Reason:      e.Reason.String(),
		Datapath:    &flow.Datapath{Event: e.Type.String(), Reason: uint8(e.Reason), IfIndex: e.IfIndex, ProxyPort: e.ProxyPort},
	}
	local, remote := uint32(e.LocalIdentity), uint32(e.RemoteIdentity)
	if e.Direction == model.Egress {
		f.Source.Identity, f.Destination.Identity = local, remote
	} else {
		f.Source.Identity, f.Destination.Identity = remote, local
	}
	if e.Type == model.EventRedirect {
		f.Verdict = flow.Redirected
	}
	return f
}

func unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
