package translator

import (
	"fmt"
	"sync"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Serialized forms. Sending a RouteConfiguration means serializing every
// route of it, though a change touches one route; the serialized form of
// a message is the concatenation of its fields' (a nested message's being
// its own serialized form), so a RouteConfiguration's is made of its
// virtual hosts' serialized forms, each made once per virtual host
// object and kept as long as the object is (it is immutable). Nothing is
// serialized until a proxy is sent the resource.

// deterministic is how resources are serialized, as go-control-plane
// serializes them.
var deterministic = proto.MarshalOptions{Deterministic: true}

// serialized is a message's serialized form, made once, on first use.
type serialized struct {
	once sync.Once
	msg  proto.Message
	b    []byte
	err  error
}

func (s *serialized) bytes() ([]byte, error) {
	s.once.Do(func() { s.b, s.err = deterministic.Marshal(s.msg) })
	return s.b, s.err
}

// routesWire makes a RouteConfiguration's serialized form from its
// virtual hosts'.
type routesWire struct {
	once   sync.Once
	rc     *routev3.RouteConfiguration
	vhosts []*serialized // rc.VirtualHosts' forms, in order
	b      []byte
	err    error
}

// vhostsField is RouteConfiguration.virtual_hosts.
var vhostsField = (&routev3.RouteConfiguration{}).ProtoReflect().Descriptor().Fields().ByName("virtual_hosts").Number()

func (w *routesWire) bytes() ([]byte, error) {
	w.once.Do(func() { w.b, w.err = w.make() })
	return w.b, w.err
}

// make serializes the RouteConfiguration without its virtual hosts and
// puts the virtual hosts where their field number puts them: the bytes
// are exactly what serializing it whole gives.
func (w *routesWire) make() ([]byte, error) {
	// The message without its virtual hosts, sharing every other field's
	// value (read-only).
	r := w.rc.ProtoReflect()
	own := r.New()
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != vhostsField {
			own.Set(fd, v)
		}
		return true
	})
	own.SetUnknown(r.GetUnknown())
	shell, err := deterministic.Marshal(own.Interface())
	if err != nil {
		return nil, fmt.Errorf("serializing route configuration %q: %w", w.rc.Name, err)
	}
	// Fields before virtual_hosts, then the virtual hosts, then the rest.
	split := len(shell)
	for off := 0; off < len(shell); {
		num, typ, k := protowire.ConsumeTag(shell[off:])
		if k < 0 {
			return nil, fmt.Errorf("serializing route configuration %q: %w", w.rc.Name, protowire.ParseError(k))
		}
		if num > vhostsField {
			split = off
			break
		}
		n := protowire.ConsumeFieldValue(num, typ, shell[off+k:])
		if n < 0 {
			return nil, fmt.Errorf("serializing route configuration %q: %w", w.rc.Name, protowire.ParseError(n))
		}
		off += k + n
	}
	size := len(shell)
	vhosts := make([][]byte, len(w.vhosts))
	for i, s := range w.vhosts {
		if vhosts[i], err = s.bytes(); err != nil {
			return nil, fmt.Errorf("serializing route configuration %q: %w", w.rc.Name, err)
		}
		size += protowire.SizeTag(vhostsField) + protowire.SizeBytes(len(vhosts[i]))
	}
	out := make([]byte, 0, size)
	out = append(out, shell[:split]...)
	for _, b := range vhosts {
		out = protowire.AppendTag(out, vhostsField, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	return append(out, shell[split:]...), nil
}

// Serialized returns a function giving the serialized form of a resource
// of r, exactly what deterministic proto serialization gives, when the
// translator can make it cheaper than serializing the resource (a
// RouteConfiguration, from its virtual hosts' kept forms); nil otherwise.
// The function may be called from any goroutine, any number of times.
func (r *Resources) Serialized(m proto.Message) func() ([]byte, error) {
	if w := r.wires[m]; w != nil {
		return w.bytes
	}
	return nil
}
