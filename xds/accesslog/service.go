package accesslog

import (
	"errors"
	"io"
	"log/slog"
	"strings"

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
	accesslogv3.UnimplementedAccessLogServiceServer
	sink Sink
	log  *slog.Logger
}

var _ accesslogv3.AccessLogServiceServer = (*Service)(nil)

// New returns a Service delivering to sink.
func New(sink Sink, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{sink: sink, log: log.With("component", "access-log-service")}
}

// Register adds the service to a gRPC server (anything with
// RegisterService, such as xds/server.Server).
func (s *Service) Register(r interface {
	RegisterService(*grpc.ServiceDesc, any)
}) {
	r.RegisterService(&accesslogv3.AccessLogService_ServiceDesc, s)
}

// StreamAccessLogs receives one proxy logger's entries until the stream
// ends.
func (s *Service) StreamAccessLogs(stream accesslogv3.AccessLogService_StreamAccessLogsServer) error {
	var node, logName string
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&accesslogv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		if id := msg.GetIdentifier(); id != nil {
			node, logName = id.GetNode().GetId(), id.GetLogName()
		}
		dir := direction(logName)
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			if f, ok := fromHTTP(e); ok {
				f.Node, f.Listener, f.Direction = node, logName, dir
				s.sink.Add(f)
			}
		}
		for _, e := range msg.GetTcpLogs().GetLogEntry() {
			if f, ok := fromTCP(e); ok {
				f.Node, f.Listener, f.Direction = node, logName, dir
				s.sink.Add(f)
			}
		}
	}
}

// direction reads "ingress" or "egress" from a policy listener's name.
func direction(logName string) string {
	parts := strings.Split(logName, "/")
	if len(parts) >= 2 && parts[0] == "policy" && (parts[1] == "ingress" || parts[1] == "egress") {
		return parts[1]
	}
	return ""
}
