package headermatch

import (
	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/rbac"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// redacted stands for a secret value in records.
const redacted = "[redacted]"

// Engine is a compiled header match configuration.
type Engine struct {
	rules []rule
}

type rule struct {
	applies *resource.RBACPolicy
	matches []match
}

type match struct {
	resource.HeaderMatchAction
	// name and value as bytes for the header list; full slices, so an
	// append to a forwarded field can never write into them.
	name, value []byte
}

// New compiles cfg; nil yields an engine that does nothing.
func New(cfg *resource.HeaderMatchPolicy) *Engine {
	e := &Engine{}
	if cfg == nil {
		return e
	}
	for _, r := range cfg.Rules {
		cr := rule{applies: r.Applies}
		for _, m := range r.Matches {
			name, value := []byte(m.Name), []byte(m.Value)
			cr.matches = append(cr.matches, match{HeaderMatchAction: m, name: name[:len(name):len(name)], value: value[:len(value):len(value)]})
		}
		e.rules = append(e.rules, cr)
	}
	return e
}

// Record is one mismatch an access log reports: a header the request
// missed (Missing, with the expected value) or one it carried with a
// value the rule rejected.
type Record struct {
	Missing bool
	Name    string
	Value   string
}

// Apply runs the rules that apply to in against its request's headers,
// h (the list in.Req's header matching reads, so later rules see the
// edits), and passes every record to note in order. It never fails a
// request.
func (e *Engine) Apply(in *rbac.Input, h *header.List, note func(Record)) {
	var scratch []byte
	for i := range e.rules {
		r := &e.rules[i]
		if !rbac.Matches(r.applies, in) {
			continue
		}
		for j := range r.matches {
			scratch = r.matches[j].apply(h, scratch, note)
		}
	}
}

// apply runs one header match and returns the scratch buffer for reuse.
func (m *match) apply(h *header.List, scratch []byte, note func(Record)) []byte {
	v, scratch, present := h.Joined(m.Name, scratch)
	if m.Matches(v, present) {
		return scratch
	}
	shown := func(s string) string {
		if m.Redact {
			return redacted
		}
		return s
	}
	switch m.Action {
	case resource.MismatchLog:
		note(Record{Missing: true, Name: m.Name, Value: shown(m.Value)})
	case resource.MismatchAdd:
		h.Add(m.name, m.value)
		note(Record{Missing: true, Name: m.Name, Value: shown(m.Value)})
	case resource.MismatchDelete:
		if m.Value == "" || !present {
			return scratch // nothing to remove, or a presence check that failed
		}
		note(Record{Name: m.Name, Value: shown(string(v))})
		h.Del(m.Name)
	case resource.MismatchReplace:
		if present {
			note(Record{Name: m.Name, Value: shown(string(v))})
		}
		h.Set(m.name, m.value)
		note(Record{Missing: true, Name: m.Name, Value: shown(m.Value)})
	}
	return scratch
}
