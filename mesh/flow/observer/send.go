package observer

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	observerpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/observer"
)

// sender sends a stream's messages on a goroutine of its own, so the
// stream's handler can give up on a client that stopped reading: a gRPC
// Send blocks for as long as the client's flow-control window stays full,
// and only the handler's return (which ends the stream and so unblocks
// that Send) stops it.
type sender struct {
	msgs    chan *observerpb.GetFlowsResponse
	errs    chan error
	timer   *time.Timer
	timeout time.Duration
	stats   *counters
}

func (s *Server) newSender(stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) *sender {
	out := &sender{
		msgs: make(chan *observerpb.GetFlowsResponse),
		// Buffered: after a timeout nobody reads the late result, and the
		// goroutine must still be able to finish.
		errs:    make(chan error, 1),
		timer:   time.NewTimer(time.Hour),
		timeout: s.sendTimeout,
		stats:   &s.stats,
	}
	out.timer.Stop()
	go func() {
		for m := range out.msgs {
			out.errs <- stream.Send(m)
		}
	}()
	return out
}

// send hands m to the goroutine and waits for the Send to complete, at
// most the send timeout. Only one send is outstanding at a time.
func (o *sender) send(m *observerpb.GetFlowsResponse) error {
	o.msgs <- m // the goroutine is idle: the previous send completed
	o.timer.Reset(o.timeout)
	select {
	case err := <-o.errs:
		o.timer.Stop()
		return err
	case <-o.timer.C:
		o.stats.slowClients.Add(1)
		return status.Errorf(codes.DeadlineExceeded, "the client did not read a flow for %s", o.timeout)
	}
}

// close ends the goroutine once its Send returns (at once, or when the
// handler's return ends the stream).
func (o *sender) close() { close(o.msgs) }

// counters are the server's cumulative stream counts (Stats).
type counters struct {
	streams, refused, slowClients, flowsSent atomic.Uint64
	active                                   atomic.Int64
}

// Stats are the observer's stream counts since New, for metrics.
type Stats struct {
	// ActiveStreams is how many GetFlows streams are being served now.
	ActiveStreams int64
	// Streams counts GetFlows streams admitted; Refused those refused
	// because WithMaxStreams were running; SlowClients those ended because
	// the client did not read within the send timeout.
	Streams, Refused, SlowClients uint64
	// FlowsSent counts flows sent to clients.
	FlowsSent uint64
}

// Stats returns the stream counts. Safe from any goroutine.
func (s *Server) Stats() Stats {
	return Stats{
		ActiveStreams: s.stats.active.Load(), Streams: s.stats.streams.Load(), Refused: s.stats.refused.Load(),
		SlowClients: s.stats.slowClients.Load(), FlowsSent: s.stats.flowsSent.Load(),
	}
}
