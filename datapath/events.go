package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// EventType says what an event reports.
type EventType uint8

const (
	EventDrop         EventType = 1
	EventRedirect     EventType = 2 // a new flow was handed to the proxy
	EventAuthRequired EventType = 3 // a flow was dropped for lack of an auth entry
)

func (t EventType) String() string {
	switch t {
	case EventDrop:
		return "drop"
	case EventRedirect:
		return "redirect"
	case EventAuthRequired:
		return "auth-required"
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Event is one record from the datapath's ring buffer.
type Event struct {
	Type      EventType
	Reason    model.Reason
	Direction model.Direction
	// BootTime is when the program ran, on CLOCK_BOOTTIME.
	BootTime time.Duration
	// Time is BootTime on the wall clock, filled in by EventReader.
	Time  time.Time
	Proto uint8
	// Source and Destination are the packet's addresses; Destination's
	// port is the policy port (the ICMP type for ICMP).
	Source      netip.AddrPort
	Destination netip.AddrPort
	IfIndex     int
	// Endpoint is the local endpoint id the decision was made for.
	Endpoint uint16
	// LocalIdentity is the local workload's identity, RemoteIdentity the
	// peer's, RemoteNode the node the peer lives on.
	LocalIdentity  model.Identity
	RemoteIdentity model.Identity
	RemoteNode     uint16
	Auth           model.AuthType
	ProxyPort      uint16
	Cookie         uint32
}

// AuthKey returns the auth table key an auth-required event asks for.
func (e Event) AuthKey() model.AuthKey {
	return model.AuthKey{Local: e.LocalIdentity, Remote: e.RemoteIdentity, RemoteNode: e.RemoteNode, Type: e.Auth}
}

var eventSize = binary.Size(nmbpf.WorkloadEvent{})

// ErrBadEvent wraps every decoding failure.
var ErrBadEvent = errors.New("malformed datapath event")

// DecodeEvent parses one ring buffer record. It never panics on short or
// corrupt input.
func DecodeEvent(b []byte) (Event, error) {
	if len(b) < eventSize {
		return Event{}, fmt.Errorf("%w: %d bytes, need %d", ErrBadEvent, len(b), eventSize)
	}
	var raw nmbpf.WorkloadEvent
	if _, err := binary.Decode(b[:eventSize], binary.NativeEndian, &raw); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	e := Event{
		Type:           EventType(raw.Type),
		Reason:         model.Reason(raw.Reason),
		Direction:      model.Direction(raw.Direction),
		BootTime:       time.Duration(raw.Timestamp),
		Proto:          raw.Proto,
		IfIndex:        int(raw.Ifindex),
		Endpoint:       raw.Endpoint,
		LocalIdentity:  model.Identity(raw.LocalIdentity),
		RemoteIdentity: model.Identity(raw.RemoteIdentity),
		RemoteNode:     raw.RemoteNode,
		Auth:           model.AuthType(raw.AuthType),
		ProxyPort:      raw.ProxyPort,
		Cookie:         raw.Cookie,
	}
	switch {
	case e.Type < EventDrop || e.Type > EventAuthRequired:
		return Event{}, fmt.Errorf("%w: type %d", ErrBadEvent, raw.Type)
	case raw.Reason >= numReasons:
		return Event{}, fmt.Errorf("%w: reason %d", ErrBadEvent, raw.Reason)
	case e.Direction != model.Ingress && e.Direction != model.Egress:
		return Event{}, fmt.Errorf("%w: direction %d", ErrBadEvent, raw.Direction)
	case raw.Family != 4 && raw.Family != 6:
		return Event{}, fmt.Errorf("%w: family %d", ErrBadEvent, raw.Family)
	}
	e.Source = netip.AddrPortFrom(addrFrom16(raw.Saddr), raw.Sport)
	e.Destination = netip.AddrPortFrom(addrFrom16(raw.Daddr), raw.Dport)
	return e, nil
}

// EventReader reads events from the ring buffer. Read blocks; Close from
// another goroutine makes it return ErrClosed.
type EventReader struct {
	r *ringbuf.Reader
}

// ErrClosed is returned by Read after Close.
var ErrClosed = ringbuf.ErrClosed

// Events opens a reader on the event ring buffer. Only one reader should
// be open at a time: each record is delivered once.
func (d *Datapath) Events() (*EventReader, error) {
	r, err := ringbuf.NewReader(d.objs.NmEvents)
	if err != nil {
		return nil, fmt.Errorf("opening event ring buffer: %w", err)
	}
	return &EventReader{r: r}, nil
}

// Read returns the next event. Malformed records yield ErrBadEvent and
// are skipped by the next call.
func (r *EventReader) Read() (Event, error) {
	rec, err := r.r.Read()
	if err != nil {
		return Event{}, err
	}
	e, err := DecodeEvent(rec.RawSample)
	if err != nil {
		return Event{}, err
	}
	if now, err := bootNow(); err == nil {
		e.Time = time.Now().Add(e.BootTime - now)
	}
	return e, nil
}

// SetDeadline makes Read return os.ErrDeadlineExceeded after t.
func (r *EventReader) SetDeadline(t time.Time) { r.r.SetDeadline(t) }

// Close stops the reader.
func (r *EventReader) Close() error { return r.r.Close() }
