package translator

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// headerEdits is an ir.HeaderModifier in Envoy's terms.
type headerEdits struct {
	add    []*corev3.HeaderValueOption
	remove []string
	// host is a Host value set by a request modifier. Envoy refuses to edit
	// Host through headers_to_add, so it becomes host_rewrite_literal.
	host string
	// opts and values back the entries of add.
	opts   []corev3.HeaderValueOption
	values []corev3.HeaderValue
}

// headerBlock holds one header edit and its list.
type headerBlock struct {
	list   [1]*corev3.HeaderValueOption
	opts   [1]corev3.HeaderValueOption
	values [1]corev3.HeaderValue
}

// addHeader adds entry i of a modifier's list (set or add).
func (e *headerEdits) addHeader(field, list string, i int, h ir.Header, action corev3.HeaderValueOption_HeaderAppendAction, request bool) *problem {
	f := func(sub string) string { return fieldf("%s.%s[%d].%s", field, list, i, sub) }
	name := strings.ToLower(h.Name)
	if name == "host" {
		if !request {
			return problemf(f("name"), "Envoy cannot edit a Host header in responses")
		}
		if !protoText(h.Value) {
			return problemf(f("value"), "value cannot be carried in Envoy config")
		}
		e.host = h.Value
		return nil
	}
	value := strings.ReplaceAll(h.Value, "%", "%%")
	switch {
	case len(name) > maxHeaderBytes:
		return problemf(f("name"), "name longer than Envoy's %d-byte limit", maxHeaderBytes)
	case len(value) > maxHeaderBytes:
		return problemf(f("value"), "value longer than Envoy's %d-byte limit", maxHeaderBytes)
	case !protoText(value):
		return problemf(f("value"), "value is not UTF-8 text")
	}
	k := len(e.add)
	hv := &e.values[k]
	hv.Key, hv.Value = name, value
	opt := &e.opts[k]
	opt.Header, opt.AppendAction = hv, action
	e.add = append(e.add, opt)
	return nil
}

// headerEditsOf converts a modifier. Envoy applies removals first, then
// additions in order, which is the IR's Remove, Set, Add order when Set
// entries (OVERWRITE_IF_EXISTS_OR_ADD) precede Add entries
// (APPEND_IF_EXISTS_OR_ADD). Names are lower-cased: HTTP header names are
// case-insensitive and Envoy stores them lower-case. Values are Envoy
// format strings, so a literal '%' is written "%%"; nothing else in a value
// is ever interpreted.
//
// Add on Host is treated as Set: Host is single-valued, and a request with
// two Host values is malformed.
func (b *builder) headerEditsOf(field string, m *ir.HeaderModifier, request bool) (headerEdits, *problem) {
	var e headerEdits
	if m == nil {
		return e, nil
	}
	if n := len(m.Set) + len(m.Add); n > maxHeadersToAdd {
		return e, problemf(field, "%d header additions exceed Envoy's limit of %d", n, maxHeadersToAdd)
	}
	if n := len(m.Set) + len(m.Add); n == 1 {
		// Routes carry these by the thousand: one edit (the common
		// case) takes one allocation, more one each for the options,
		// their values and their list.
		blk := b.headerBlocks.get(b.cold)
		e.add, e.opts, e.values = blk.list[:0:1], blk.opts[:], blk.values[:]
	} else if n > 1 {
		e.add = make([]*corev3.HeaderValueOption, 0, n)
		e.opts = make([]corev3.HeaderValueOption, n)
		e.values = make([]corev3.HeaderValue, n)
	}
	for i, h := range m.Set {
		if p := e.addHeader(field, "set", i, h, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, request); p != nil {
			return e, p
		}
	}
	for i, h := range m.Add {
		if p := e.addHeader(field, "add", i, h, corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, request); p != nil {
			return e, p
		}
	}
	if len(m.Remove) > 0 {
		e.remove = make([]string, 0, len(m.Remove))
	}
	for i, n := range m.Remove {
		name := strings.ToLower(n)
		if name == "host" {
			return e, problemf(fieldf("%s.remove[%d]", field, i), "Envoy cannot remove the Host header")
		}
		e.remove = append(e.remove, name)
	}
	return e, nil
}
