package observer

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
)

// maxMaskPaths bounds a request's field mask.
const maxMaskPaths = 256

// fieldMask keeps only the listed fields of a flow, as Hubble's
// field_mask asks (the hubble CLI sends one for its compact output).
type fieldMask []string

func newFieldMask(fm *fieldmaskpb.FieldMask) (fieldMask, error) {
	paths := fm.GetPaths()
	if len(paths) == 0 {
		return nil, nil
	}
	if len(paths) > maxMaskPaths {
		return nil, fmt.Errorf("field mask of %d paths, at most %d", len(paths), maxMaskPaths)
	}
	if !fm.IsValid(&flowpb.Flow{}) {
		return nil, fmt.Errorf("field mask %v names fields flow.Flow does not have", paths)
	}
	return fieldMask(paths), nil
}

// apply returns a flow with only the masked fields of f (f itself when
// the mask is empty).
func (m fieldMask) apply(f *flowpb.Flow) *flowpb.Flow {
	if len(m) == 0 {
		return f
	}
	out := &flowpb.Flow{}
	for _, p := range m {
		copyPath(out.ProtoReflect(), f.ProtoReflect(), strings.Split(p, "."))
	}
	return out
}

func copyPath(dst, src protoreflect.Message, path []string) {
	fd := src.Descriptor().Fields().ByName(protoreflect.Name(path[0]))
	if fd == nil || !src.Has(fd) {
		return
	}
	if len(path) == 1 || fd.Message() == nil || fd.IsList() || fd.IsMap() {
		dst.Set(fd, src.Get(fd))
		return
	}
	copyPath(dst.Mutable(fd).Message(), src.Get(fd).Message(), path[1:])
}
