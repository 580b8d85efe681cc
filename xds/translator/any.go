package translator

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// typedConfig validates m and packs it into an Any. The marshalling is
// deterministic so equal configs give equal bytes (the xDS server hashes
// resources for versions).
func typedConfig(kind, name string, m interface {
	proto.Message
	validator
}) (*anypb.Any, error) {
	if err := checked(kind, name, m); err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshalling %s %q: %w", kind, name, err)
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}, nil
}
