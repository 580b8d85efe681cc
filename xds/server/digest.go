package server

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Resource versions and validation, computed once per object.
//
// A resource's version is a SHA-256 digest of its content. For a message
// without a split field (below) it is the digest of the deterministic wire
// form, exactly go-control-plane's HashResource(MarshalResource(m)). A
// RouteConfiguration may hold tens of thousands of routes of which one
// changes at a time; marshalling and validating all of them for every
// change would dominate a one-route update. So a message type with a split
// field (RouteConfiguration.virtual_hosts, VirtualHost.routes) is digested
// as the wire form of all its other fields (length-prefixed), the number
// of items of the split field, then each item's digest in order. That is a
// function of content alone (equal content gives an equal digest, across
// processes too), and changes whenever the wire form changes.
//
// Each digest is kept in a tree of nodes mirroring the resource. Messages
// are immutable once handed to Update, so a node is reusable for the very
// same object: a changed RouteConfiguration reuses the nodes of every
// virtual host object the previous version of that resource had, and a
// changed virtual host the nodes of the previous route objects, found by
// pointer. Only new objects are marshalled and validated (a split message
// without its split field, items separately): exactly what ValidateAll on
// the whole would check, since the split fields carry no list-level rules
// (digest_test.go checks that against the rules in the descriptors).

// splitFields names, per message type, the repeated message field whose
// items are digested and validated one by one.
var splitFields = map[protoreflect.FullName]protoreflect.FieldDescriptor{}

func init() {
	for _, s := range []struct {
		m     proto.Message
		field protoreflect.Name
	}{
		{&routev3.RouteConfiguration{}, "virtual_hosts"},
		{&routev3.VirtualHost{}, "routes"},
	} {
		md := s.m.ProtoReflect().Descriptor()
		fd := md.Fields().ByName(s.field)
		if fd == nil || !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
			panic(fmt.Sprintf("split field %s.%s is not a repeated message field", md.FullName(), s.field))
		}
		splitFields[md.FullName()] = fd
	}
}

// digest is a SHA-256 sum.
type digest [sha256.Size]byte

func (d digest) String() string { return hex.EncodeToString(d[:]) }

// node is the digest of one message and, for a message with a split field,
// the nodes of the field's items in order. Nodes are immutable once built
// and shared between successive trees.
type node struct {
	msg  proto.Message
	sum  digest
	kids []*node
}

// digestResource returns the tree of m, reusing the nodes of prev (the
// tree of the previous object under the same name, or nil) for the
// objects m still holds, and validating everything new. The error names
// the path to the invalid item.
func digestResource(m proto.Message, prev *node) (*node, error) {
	if prev != nil && prev.msg == m {
		return prev, nil
	}
	var p *pool
	if prev != nil && len(prev.kids) > 0 {
		p = &pool{nodes: prev.kids}
	}
	var d digester
	return d.digest(m, p)
}

// digester holds the scratch state of one digestResource call.
type digester struct {
	h   hash.Hash
	buf []byte
}

// digest builds the node of a message that is not in any pool; kids offers
// nodes for the items of its split field.
func (d *digester) digest(m proto.Message, kids *pool) (*node, error) {
	r := m.ProtoReflect()
	fd := splitFields[r.Descriptor().FullName()]
	if fd == nil {
		if err := validate(m); err != nil {
			return nil, err
		}
		b, err := d.marshal(m)
		if err != nil {
			return nil, err
		}
		return &node{msg: m, sum: sha256.Sum256(b)}, nil
	}
	// The message without its split field: a new message sharing every
	// other field's value (read-only), unknown fields included.
	shell := r.New()
	r.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if f != fd {
			shell.Set(f, v)
		}
		return true
	})
	shell.SetUnknown(r.GetUnknown())
	if err := validate(shell.Interface()); err != nil {
		return nil, err
	}

	list := r.Get(fd).List()
	n := &node{msg: m, kids: make([]*node, list.Len())}
	var fresh []int
	for i := range n.kids {
		if k := kids.take(list.Get(i).Message().Interface()); k != nil {
			n.kids[i] = k
		} else {
			fresh = append(fresh, i)
		}
	}
	if len(fresh) > 0 {
		below := kids.below()
		for _, i := range fresh {
			item := list.Get(i).Message()
			if !item.IsValid() {
				// ValidateAll skips a nil item and marshalling writes
				// it as an empty message, which Envoy would reject.
				return nil, fmt.Errorf("%s[%d]: nil item", fd.Name(), i)
			}
			k, err := d.digest(item.Interface(), below)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]%s: %w", fd.Name(), i, nameOf(item.Interface()), err)
			}
			n.kids[i] = k
		}
	}

	// Marshalled only now: the items above reuse the buffer.
	b, err := d.marshal(shell.Interface())
	if err != nil {
		return nil, err
	}
	if d.h == nil {
		d.h = sha256.New()
	}
	d.h.Reset()
	var num [binary.MaxVarintLen64]byte
	d.h.Write(num[:binary.PutUvarint(num[:], uint64(len(b)))])
	d.h.Write(b)
	d.h.Write(num[:binary.PutUvarint(num[:], uint64(len(n.kids)))])
	for _, k := range n.kids {
		d.h.Write(k.sum[:])
	}
	d.h.Sum(n.sum[:0])
	return n, nil
}

// marshal returns m's deterministic wire form (the same bytes as
// go-control-plane's MarshalResource) in a buffer reused by the next call.
func (d *digester) marshal(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(d.buf[:0], m)
	if err != nil {
		return nil, fmt.Errorf("marshalling: %w", err)
	}
	d.buf = b
	return b, nil
}

// pool offers the nodes of one level of a previous tree for reuse by
// pointer. The level below is made of the children of the nodes nobody
// took: a node taken brings its whole subtree along.
type pool struct {
	nodes []*node
	index map[proto.Message]int
	taken []bool
	next  *pool
}

func (p *pool) take(m proto.Message) *node {
	if p == nil || len(p.nodes) == 0 {
		return nil
	}
	if p.index == nil {
		p.index = make(map[proto.Message]int, len(p.nodes))
		for i, n := range p.nodes {
			p.index[n.msg] = i
		}
		p.taken = make([]bool, len(p.nodes))
	}
	i, ok := p.index[m]
	if !ok {
		return nil
	}
	p.taken[i] = true
	return p.nodes[i]
}

// below is the pool of the next level. It is computed once, from the nodes
// not taken so far; a node taken later only makes it larger than needed.
func (p *pool) below() *pool {
	if p == nil {
		return nil
	}
	if p.next == nil {
		var kids []*node
		for i, n := range p.nodes {
			if p.taken == nil || !p.taken[i] {
				kids = append(kids, n.kids...)
			}
		}
		p.next = &pool{nodes: kids}
	}
	return p.next
}

// validate runs go-control-plane's generated validation, which every
// Envoy message has.
func validate(m proto.Message) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		return v.ValidateAll()
	}
	return nil
}

// nameOf renders an item's name for an error path, if it has one.
func nameOf(m proto.Message) string {
	if n, ok := m.(interface{ GetName() string }); ok && n.GetName() != "" {
		return fmt.Sprintf(" %q", n.GetName())
	}
	return ""
}
