package accesslog

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"

	"github.com/nodemesh/nodemesh/mesh/flow"
)

// Sink receives flows, one call per received message with the
// message's flows in order; it is called from stream goroutines, must
// not block for long and must not keep the slice, which the stream
// reuses (flow.Store qualifies).
type Sink interface {
	AddAll([]flow.Flow)
}

// Service implements envoy.service.accesslog.v3.AccessLogService.
type Service struct {
	sink Sink
	log  *slog.Logger

	flows, skipped, truncated atomic.Uint64
}

// Stats are the service's cumulative entry counts since New.
type Stats struct {
	// Flows counts entries that became flows; Truncated those of them
	// whose strings or lists were cut to the bounds (bounds.go); Skipped
	// the entries that could not become a flow (no usable addresses,
	// malformed bytes, a string that is not UTF-8).
	Flows, Truncated, Skipped uint64
}

// Stats returns the entry counts. Safe from any goroutine.
func (s *Service) Stats() Stats {
	return Stats{Flows: s.flows.Load(), Truncated: s.truncated.Load(), Skipped: s.skipped.Load()}
}

// New returns a Service delivering to sink.
func New(sink Sink, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{sink: sink, log: log.With("component", "access-log-service")}
}

// serviceDesc is AccessLogService as the generated code describes it,
// but with a handler that receives each message in wire form
// (wireMessage) instead of decoding it into the generated types.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: accesslogv3.AccessLogService_ServiceDesc.ServiceName,
	HandlerType: (*interface{ stream(grpc.ServerStream) error })(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "StreamAccessLogs",
		Handler:       func(srv any, ss grpc.ServerStream) error { return srv.(*Service).stream(ss) },
		ClientStreams: true,
	}},
	Metadata: accesslogv3.AccessLogService_ServiceDesc.Metadata,
}

// Register adds the service to a gRPC server (anything with
// RegisterService, such as xds/server.Server).
func (s *Service) Register(r interface {
	RegisterService(*grpc.ServiceDesc, any)
}) {
	r.RegisterService(&serviceDesc, s)
}

// stream receives one proxy logger's entries until the stream ends
// (StreamAccessLogs).
func (s *Service) stream(ss grpc.ServerStream) error {
	var node, logName, dir string
	msg := &wireMessage{}
	var batch []flow.Flow // the message's flows, for the sink; reused
	for {
		err := ss.RecvMsg(msg)
		if errors.Is(err, io.EOF) {
			return ss.SendMsg(&accesslogv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		if msg.hasID {
			node, logName = msg.node, msg.logName
			dir = direction(logName)
			if msg.nodeBytes > MaxFieldBytes || msg.logNameBytes > MaxFieldBytes {
				s.log.Warn("access-log stream identifier cut to its bound", "node_bytes", msg.nodeBytes,
					"log_name_bytes", msg.logNameBytes, "bound", MaxFieldBytes)
			}
		}
		batch = s.deliver(batch[:0], msg.entries, node, logName, dir)
	}
}

// deliver counts a message's converted entries and hands their flows to
// the sink, in calls of at most keptEntries flows (one call for a usual
// message), through batch (returned for reuse, emptied of references).
func (s *Service) deliver(batch []flow.Flow, entries []converted, node, logName, dir string) []flow.Flow {
	var skipped, truncated uint64
	for i := range entries {
		c := &entries[i]
		if !c.ok {
			skipped++
			continue
		}
		if c.truncated {
			truncated++
		}
		batch = append(batch, c.f)
		f := &batch[len(batch)-1]
		f.Node, f.Listener, f.Direction = node, logName, dir
	}
	if skipped > 0 {
		s.skipped.Add(skipped)
	}
	if truncated > 0 {
		s.truncated.Add(truncated)
	}
	if len(batch) > 0 {
		s.flows.Add(uint64(len(batch)))
		// At most keptEntries flows per call: the sink holds its lock for
		// a call, and a large message (up to gRPC's 4 MiB, some 100 000
		// minimal entries) must not stall its readers and the other
		// streams for all of it.
		for rest := batch; len(rest) > 0; {
			n := min(len(rest), keptEntries)
			s.sink.AddAll(rest[:n])
			rest = rest[n:]
		}
	}
	clear(batch)
	if cap(batch) > keptEntries {
		return nil // a rare large message does not stay with the stream
	}
	return batch
}

// keptEntries is how many entries' room a stream keeps between messages
// (a hop's message has about 64).
const keptEntries = 256

// direction reads "ingress" or "egress" from a policy listener's name.
func direction(logName string) string {
	parts := strings.Split(logName, "/")
	if len(parts) >= 2 && parts[0] == "policy" && (parts[1] == "ingress" || parts[1] == "egress") {
		return parts[1]
	}
	return ""
}
