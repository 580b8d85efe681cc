package translator

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// verbatim emits the Envoy resources the IR carries as they are
// (ir.Resource: what users wrote in a CiliumEnvoyConfig, renamed and
// checked by mesh/envoyconfig). They are decoded and validated again here
// because this is where every emitted resource is validated; a failure is
// a producer bug and stops the translation like any other invalid output.
// They get no version of their own (Resources.Version returns ""), so the
// server versions them by their serialized form.
func (b *builder) verbatim(rs []*ir.Resource) error {
	for _, r := range rs {
		var m interface {
			proto.Message
			validator
		}
		switch r.TypeURL {
		case ir.TypeListener:
			m = &listenerv3.Listener{}
		case ir.TypeRouteConfiguration:
			m = &routev3.RouteConfiguration{}
		case ir.TypeCluster:
			m = &clusterv3.Cluster{}
		case ir.TypeClusterLoadAssignment:
			m = &endpointv3.ClusterLoadAssignment{}
		case ir.TypeSecret:
			m = &tlsv3.Secret{}
		default:
			return fmt.Errorf("%w: resource %q: type %q", ErrInvalidOutput, r.Name, r.TypeURL)
		}
		if err := proto.Unmarshal(r.Value, m); err != nil {
			return fmt.Errorf("%w: resource %q: decoding: %v", ErrInvalidOutput, r.Name, err)
		}
		if err := checked(r.TypeURL, r.Name, m); err != nil {
			return err
		}
		var name string
		switch x := m.(type) {
		case *listenerv3.Listener:
			name = x.GetName()
			b.out.Listeners = append(b.out.Listeners, x)
		case *routev3.RouteConfiguration:
			name = x.GetName()
			b.out.RouteConfigurations = append(b.out.RouteConfigurations, x)
		case *clusterv3.Cluster:
			name = x.GetName()
			b.out.Clusters = append(b.out.Clusters, x)
		case *endpointv3.ClusterLoadAssignment:
			name = x.GetClusterName()
			b.out.ClusterLoadAssignments = append(b.out.ClusterLoadAssignments, x)
		case *tlsv3.Secret:
			name = x.GetName()
			b.out.Secrets = append(b.out.Secrets, x)
		}
		if name != r.Name {
			return fmt.Errorf("%w: resource %q names itself %q", ErrInvalidOutput, r.Name, name)
		}
	}
	return nil
}
