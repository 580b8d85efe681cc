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

// Sink receives flows; it is called from stream goroutines and must not
// block for long (flow.Store qualifies).
type Sink interface {
	Add(flow.Flow)
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
	var node, logName string
	msg := &wireMessage{}
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
			if msg.nodeBytes > MaxFieldBytes || msg.logNameBytes > MaxFieldBytes {
				s.log.Warn("access-log stream identifier cut to its bound", "node_bytes", msg.nodeBytes,
					"log_name_bytes", msg.logNameBytes, "bound", MaxFieldBytes)
			}
		}
		dir := direction(logName)
		for i := range msg.entries {
			c := &msg.entries[i]
			s.deliver(c.f, c.truncated, c.ok, node, logName, dir)
		}
	}
}

// deliver counts a converted entry and hands it to the sink.
func (s *Service) deliver(f flow.Flow, truncated, ok bool, node, logName, dir string) {
	if !ok {
		s.skipped.Add(1)
		return
	}
	s.flows.Add(1)
	if truncated {
		s.truncated.Add(1)
	}
	f.Node, f.Listener, f.Direction = node, logName, dir
	s.sink.Add(f)
}

// direction reads "ingress" or "egress" from a policy listener's name.
func direction(logName string) string {
	parts := strings.Split(logName, "/")
	if len(parts) >= 2 && parts[0] == "policy" && (parts[1] == "ingress" || parts[1] == "egress") {
		return parts[1]
	}
	return ""
}
