package resource

import "crypto/subtle"

// HeaderMatchPolicy is a decoded header match filter configuration
// (nodemesh.filters.http.header_match.v1.HeaderMatchPolicy).
type HeaderMatchPolicy struct {
	Rules []*HeaderMatchRule
}

// HeaderMatchRule is one rule: where it applies, as an RBAC policy (its
// permissions hold the destination, port and request matchers, its
// principals the sources), and what it checks, in order.
type HeaderMatchRule struct {
	Name    string
	Applies *RBACPolicy
	Matches []HeaderMatchAction
}

// MismatchAction is what a header match does on a mismatch.
type MismatchAction uint8

// Mismatch actions.
const (
	MismatchLog MismatchAction = iota + 1
	MismatchAdd
	MismatchDelete
	MismatchReplace
)

// HeaderMatchAction is one decoded header match.
type HeaderMatchAction struct {
	Name   string // lower-case
	Value  string // empty: presence
	Action MismatchAction
	Redact bool
}

// Matches reports whether a header is present (present) with the joined
// value v that the match expects: any value for an empty Value, else
// exactly Value, compared in constant time (the value may be a secret).
func (m *HeaderMatchAction) Matches(v []byte, present bool) bool {
	if !present {
		return false
	}
	if m.Value == "" {
		return true
	}
	return subtle.ConstantTimeCompare(v, []byte(m.Value)) == 1
}
