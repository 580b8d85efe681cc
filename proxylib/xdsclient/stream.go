package xdsclient

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// request is what the state-of-the-world and the delta requests share:
// the stream loop names the type in errors and sets the node on the
// first request.
type request interface {
	*discoveryv3.DiscoveryRequest | *discoveryv3.DeltaDiscoveryRequest
	GetTypeUrl() string
}

// adsStream is one open ADS stream of either protocol variant.
type adsStream[Req request, Resp any] interface {
	Send(Req) error
	Recv() (Resp, error)
}

// session is the protocol state of one stream (sotwSession,
// deltaSession): the requests to open with, and those that answer each
// response.
type session[Req request, Resp any] interface {
	start() []Req
	handle(Resp) []Req
}

// serve runs one opened stream until it fails: it sends sess's opening
// requests, the first carrying the node, then answers every response.
// got reports whether any response arrived (the caller resets its
// back-off then).
func serve[Req request, Resp any](stream adsStream[Req, Resp], sess session[Req, Resp], node *corev3.Node) (got bool, err error) {
	first := true
	send := func(reqs []Req) error {
		for _, req := range reqs {
			if first {
				setNode(req, node)
				first = false
			}
			if err := stream.Send(req); err != nil {
				return fmt.Errorf("sending %s request: %w", req.GetTypeUrl(), err)
			}
		}
		return nil
	}
	if err := send(sess.start()); err != nil {
		return false, err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return got, fmt.Errorf("receiving: %w", err)
		}
		got = true
		if err := send(sess.handle(resp)); err != nil {
			return got, err
		}
	}
}

func setNode[Req request](req Req, node *corev3.Node) {
	switch r := any(req).(type) {
	case *discoveryv3.DiscoveryRequest:
		r.Node = node
	case *discoveryv3.DeltaDiscoveryRequest:
		r.Node = node
	}
}
