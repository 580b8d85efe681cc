package envoyconfig

import (
	"fmt"

	// The Envoy types a resource may carry, registered for protojson's
	// resolution of "@type": the five resource types and the extensions
	// the builtin proxy implements. A type not registered here fails to
	// decode with protojson's "unable to resolve" error, which names it.
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// maxResourceBytes bounds one resource's JSON. The API server stores a
// whole object in at most 1.5 MiB; files are bounded the same way so a
// folder cannot make the agent decode more than a cluster could.
const maxResourceBytes = 3 << 20 / 2

// resource is one decoded entry of spec.resources.
type entry struct {
	index int
	msg   proto.Message
	// name is the name the user gave it (before qualification).
	name string
}

func (r *entry) typeURL() string {
	return "type.googleapis.com/" + string(r.msg.ProtoReflect().Descriptor().FullName())
}

// decodeResource turns one entry of spec.resources (JSON with "@type")
// into its Envoy message. Unknown fields and unknown types are errors.
func decodeResource(i int, raw []byte) (*entry, error) {
	if len(raw) > maxResourceBytes {
		return nil, fmt.Errorf("resources[%d]: %d bytes, at most %d", i, len(raw), maxResourceBytes)
	}
	var a anypb.Any
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("resources[%d]: decoding: %w", i, err)
	}
	var msg proto.Message
	switch a.GetTypeUrl() {
	case ir.TypeListener:
		msg = &listenerv3.Listener{}
	case ir.TypeRouteConfiguration:
		msg = &routev3.RouteConfiguration{}
	case ir.TypeCluster:
		msg = &clusterv3.Cluster{}
	case ir.TypeClusterLoadAssignment:
		msg = &endpointv3.ClusterLoadAssignment{}
	case ir.TypeSecret:
		msg = &tlsv3.Secret{}
	default:
		return nil, fmt.Errorf("resources[%d]: type %q is not a Listener, RouteConfiguration, Cluster, ClusterLoadAssignment or Secret", i, a.GetTypeUrl())
	}
	if err := a.UnmarshalTo(msg); err != nil {
		return nil, fmt.Errorf("resources[%d]: decoding: %w", i, err)
	}
	r := &entry{index: i, msg: msg}
	switch m := msg.(type) {
	case *listenerv3.Listener:
		r.name = m.GetName()
	case *routev3.RouteConfiguration:
		r.name = m.GetName()
	case *clusterv3.Cluster:
		r.name = m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		r.name = m.GetClusterName()
	case *tlsv3.Secret:
		r.name = m.GetName()
	}
	if r.name == "" {
		return nil, fmt.Errorf("resources[%d] (%s): no name", i, kindOf(msg))
	}
	return r, nil
}

// kindOf is the short type name of a resource message, for messages.
func kindOf(m proto.Message) string { return string(m.ProtoReflect().Descriptor().Name()) }
