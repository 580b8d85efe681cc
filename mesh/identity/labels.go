package identity

import (
	"sort"
	"strings"
)

// Label sources.
const (
	SourceK8s      = "k8s"
	SourceReserved = "reserved"
	SourceCIDR     = "cidr"
	// SourceAny in a selector key matches a label of any source.
	SourceAny = "any"
)

// Keys of the labels every Pod carries besides its own.
const (
	LabelNamespace       = "io.kubernetes.pod.namespace"
	LabelServiceAccount  = "io.cilium.k8s.policy.serviceaccount"
	LabelCluster         = "io.cilium.k8s.policy.cluster"
	LabelNamespaceLabels = "io.cilium.k8s.namespace.labels"
	// LabelNamespaceName is the label the API server puts on every
	// Namespace.
	LabelNamespaceName = "kubernetes.io/metadata.name"
)

// Label is one source-qualified label.
type Label struct {
	Source string `json:"source"`
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
}

// String renders "source:key=value" ("source:key" without a value).
func (l Label) String() string {
	s := l.Source + ":" + l.Key
	if l.Value != "" {
		s += "=" + l.Value
	}
	return s
}

// Labels is a set of labels sorted by source, then key; a key appears at
// most once per source.
type Labels []Label

// NewLabels sorts ls and drops later duplicates of a source and key.
func NewLabels(ls ...Label) Labels {
	out := append(Labels(nil), ls...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].Key < out[j].Key
	})
	n := 0
	for i, l := range out {
		if i > 0 && l.Source == out[n-1].Source && l.Key == out[n-1].Key {
			continue
		}
		out[n] = l
		n++
	}
	return out[:n]
}

// Lookup returns the value of key with the given source; source "" or
// SourceAny accepts any source (the first in order).
func (ls Labels) Lookup(source, key string) (string, bool) {
	for _, l := range ls {
		if l.Key == key && (source == "" || source == SourceAny || source == l.Source) {
			return l.Value, true
		}
	}
	return "", false
}

// Has reports whether the exact label is in the set.
func (ls Labels) Has(l Label) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// String renders the labels comma-separated; it is also the canonical key
// of the set.
func (ls Labels) String() string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.String()
	}
	return strings.Join(parts, ",")
}

// ParseSelectorKey splits a selector key such as "k8s:app" or
// "reserved:host" into source and key. A key without a known source
// prefix has source SourceAny. Only the sources Cilium defines are
// recognised, so a key like "example.com:8080/x" stays whole.
func ParseSelectorKey(s string) (source, key string) {
	if i := strings.IndexByte(s, ':'); i > 0 {
		switch src := s[:i]; src {
		case SourceK8s, SourceReserved, SourceCIDR, SourceAny, "container", "unspec", "k8s-nodes", "fqdn", "cilium-generated", "node":
			return src, s[i+1:]
		}
	}
	return SourceAny, s
}

// Equal reports whether two label sets (as NewLabels builds them) hold the
// same labels.
func (ls Labels) Equal(o Labels) bool {
	if len(ls) != len(o) {
		return false
	}
	for i := range ls {
		if ls[i] != o[i] {
			return false
		}
	}
	return true
}
