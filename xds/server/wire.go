package server

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoiface"

	"github.com/nodemesh/nodemesh/xds/translator"
)

// go-control-plane serializes every resource it sends with proto's
// deterministic marshalling. For a resource the translator can serialize
// cheaper (translator.Resources.Serialized: a RouteConfiguration from its
// virtual hosts' kept serialized forms, so a one-route change does not
// serialize every route again), the server hands the caches a wired
// resource: the same message, whose marshalling answers from that form.

// wired is a resource whose serialized form comes from wire.
type wired struct {
	types.Resource
	wire func() ([]byte, error)
}

// servedAs is what the caches are given for resource m of res.
func servedAs(m types.Resource, res *translator.Resources) types.Resource {
	if f := res.Serialized(m); f != nil {
		return &wired{Resource: m, wire: f}
	}
	return m
}

// GetName makes go-control-plane find the resource's name.
func (w *wired) GetName() string { return cachev3.GetResourceName(w.Resource) }

func (w *wired) ProtoReflect() protoreflect.Message {
	return wiredMessage{Message: w.Resource.ProtoReflect(), w: w}
}

// wiredMessage is the message's reflection, but for marshalling.
type wiredMessage struct {
	protoreflect.Message
	w *wired
}

func (m wiredMessage) Interface() protoreflect.ProtoMessage { return m.w }

func (m wiredMessage) ProtoMethods() *protoiface.Methods {
	inner := m.Message.ProtoMethods()
	out := &protoiface.Methods{
		Flags: protoiface.SupportMarshalDeterministic,
		Size: func(protoiface.SizeInput) protoiface.SizeOutput {
			b, _ := m.w.wire()
			return protoiface.SizeOutput{Size: len(b)}
		},
		Marshal: func(in protoiface.MarshalInput) (protoiface.MarshalOutput, error) {
			b, err := m.w.wire()
			if err != nil {
				return protoiface.MarshalOutput{}, err
			}
			return protoiface.MarshalOutput{Buf: append(in.Buf, b...)}, nil
		},
	}
	if inner != nil && inner.CheckInitialized != nil {
		// The message's own check, on the message itself.
		out.CheckInitialized = func(in protoiface.CheckInitializedInput) (protoiface.CheckInitializedOutput, error) {
			in.Message = m.Message
			return inner.CheckInitialized(in)
		}
	}
	return out
}
