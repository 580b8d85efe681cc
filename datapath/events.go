package datapath

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// The event types live in datapath/model so that consumers (the agent's
// flow recorder) read events without linking the loader.
type (
	EventType = model.EventType
	Event     = model.Event
)

const (
	EventDrop         = model.EventDrop
	EventRedirect     = model.EventRedirect
	EventAuthRequired = model.EventAuthRequired
)

var eventSize = binary.Size(nmbpf.WorkloadEvent{})

// ErrBadEvent wraps every decoding failure.
var ErrBadEvent = model.ErrBadEvent

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
