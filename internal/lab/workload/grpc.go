package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"
)

// rawMessage carries a message's bytes without decoding them: the echo
// answers any method of any service with what it received.
type rawMessage struct{ b []byte }

// echoCodec passes rawMessage through as bytes and encodes everything
// else (the health and reflection services) as protobuf, under the name
// "proto" so clients need nothing special.
type echoCodec struct{}

func (echoCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *rawMessage:
		return m.b, nil
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("encoding %T: not a message", v)
}

func (echoCodec) Unmarshal(b []byte, v any) error {
	switch m := v.(type) {
	case *rawMessage:
		m.b = append(m.b[:0], b...)
		return nil
	case proto.Message:
		return proto.Unmarshal(b, m)
	}
	return fmt.Errorf("decoding into %T: not a message", v)
}

func (echoCodec) Name() string { return "proto" }

// echoStream answers every message of a call with itself, and the call's
// metadata with response headers "echo-<key>"; the header "echo-backend"
// names the backend (name), so a client can tell which one answered.
func echoStream(name string) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error { return echoCall(name, stream) }
}

func echoCall(name string, stream grpc.ServerStream) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	hdr := metadata.MD{"echo-backend": []string{name}}
	for k, v := range md {
		if !strings.HasPrefix(k, ":") {
			hdr["echo-"+k] = v
		}
	}
	if method, ok := grpc.MethodFromServerStream(stream); ok {
		hdr.Set("echo-method", method)
	}
	if err := stream.SendHeader(hdr); err != nil {
		return err
	}
	for {
		var m rawMessage
		if err := stream.RecvMsg(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.SendMsg(&m); err != nil {
			return err
		}
	}
}

func runGRPCEcho(ctx context.Context, ports []int, _ []string, out io.Writer) error {
	ls, err := listen(ports)
	if err != nil {
		return err
	}
	//nolint:staticcheck // the v1 codec interface is what a byte pass-through needs.
	name, _ := os.Hostname()
	if h := os.Getenv("HOSTNAME"); h != "" {
		name = h
	}
	gs := grpc.NewServer(grpc.ForceServerCodec(echoCodec{}), grpc.UnknownServiceHandler(echoStream(name)))
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	errc := make(chan error, len(ls))
	for _, l := range ls {
		fmt.Fprintf(out, "grpc-echo: serving gRPC on %s\n", l.Addr())
		go func(l net.Listener) { errc <- gs.Serve(l) }(l)
	}
	select {
	case err := <-errc:
		gs.Stop()
		return err
	case <-ctx.Done():
	}
	hs.Shutdown()
	gs.GracefulStop()
	return nil
}
