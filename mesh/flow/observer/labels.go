package observer

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// A label selector, as `hubble observe --label/--from-label/--to-label`
// sends it (source_label, destination_label): Kubernetes' label selector
// syntax, comma-separated requirements that must all hold, whose keys may
// carry a Cilium source ("k8s:app=x", "reserved:world"). A key without a
// source matches a label of any source, as in Cilium's policy selectors.
// Requirements: key, !key, key=v, key==v, key!=v, key in (v1,v2),
// key notin (v1,v2). The set-based "gt"/"lt" and anything else are
// refused.
type requirement struct {
	source, key string
	op          string // "exists", "!", "=", "!=", "in", "notin"
	values      []string
}

var (
	labelKey   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:-]*$`)
	labelValue = regexp.MustCompile(`^[A-Za-z0-9._-]*$`)
	setExpr    = regexp.MustCompile(`^(\S+)\s+(in|notin)\s*\((.*)\)$`)
)

// parseSelector parses one selector.
func parseSelector(s string) ([]requirement, error) {
	if len(s) > maxPatternSize {
		return nil, fmt.Errorf("selector of %d bytes, at most %d", len(s), maxPatternSize)
	}
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty selector")
	}
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("%q: unbalanced parenthesis", s)
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%q: unbalanced parenthesis", s)
	}
	parts = append(parts, s[start:])
	var reqs []requirement
	for _, p := range parts {
		r, err := parseRequirement(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

func parseRequirement(p string) (requirement, error) {
	var r requirement
	var key string
	switch {
	case p == "":
		return r, errors.New("empty requirement")
	case strings.HasPrefix(p, "!") && !strings.Contains(p, "="):
		r.op, key = "!", strings.TrimSpace(p[1:])
	case setExpr.MatchString(p):
		m := setExpr.FindStringSubmatch(p)
		r.op, key = m[2], m[1]
		for _, v := range strings.Split(m[3], ",") {
			r.values = append(r.values, strings.TrimSpace(v))
		}
		if len(r.values) > maxValues {
			return r, fmt.Errorf("%d values in a set, at most %d", len(r.values), maxValues)
		}
	case strings.Contains(p, "!="):
		k, v, _ := strings.Cut(p, "!=")
		r.op, key, r.values = "!=", strings.TrimSpace(k), []string{strings.TrimSpace(v)}
	case strings.Contains(p, "="):
		k, v, _ := strings.Cut(p, "=")
		v = strings.TrimPrefix(v, "=") // "==" is "="
		r.op, key, r.values = "=", strings.TrimSpace(k), []string{strings.TrimSpace(v)}
	default:
		if strings.ContainsAny(p, " \t<>()") {
			return r, fmt.Errorf("%q is not a requirement this observer evaluates", p)
		}
		r.op, key = "exists", p
	}
	return finish(r, key)
}

// finish validates the key and values and splits the key's source.
func finish(r requirement, key string) (requirement, error) {
	if !labelKey.MatchString(key) {
		return r, fmt.Errorf("%q is not a label key", key)
	}
	for _, v := range r.values {
		if !labelValue.MatchString(v) {
			return r, fmt.Errorf("%q is not a label value", v)
		}
	}
	r.source, r.key = identity.ParseSelectorKey(key)
	if r.key == "" {
		return r, fmt.Errorf("%q has no key", key)
	}
	return r, nil
}

// matches evaluates the requirement on an endpoint's labels
// ("source:key=value").
func (r requirement) matches(labels []string) bool {
	var vals []string
	for _, l := range labels {
		src, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(rest, "=")
		if k == r.key && (r.source == identity.SourceAny || r.source == src) {
			vals = append(vals, v)
		}
	}
	in := func() bool {
		return slices.ContainsFunc(vals, func(v string) bool { return slices.Contains(r.values, v) })
	}
	switch r.op {
	case "exists":
		return len(vals) > 0
	case "!":
		return len(vals) == 0
	case "=", "in":
		return in()
	default: // "!=", "notin": also when the key is absent, as in Kubernetes
		return !in()
	}
}

// labelSelectors matches an endpoint whose labels satisfy any of the
// selectors.
func labelSelectors(vals []string, get func(*flowpb.Flow) *flowpb.Endpoint) (match, error) {
	var sels [][]requirement
	for _, v := range vals {
		reqs, err := parseSelector(v)
		if err != nil {
			return nil, err
		}
		sels = append(sels, reqs)
	}
	return func(fl *flowpb.Flow) bool {
		labels := get(fl).GetLabels()
		return slices.ContainsFunc(sels, func(reqs []requirement) bool {
			for _, r := range reqs {
				if !r.matches(labels) {
					return false
				}
			}
			return true
		})
	}, nil
}
