package identity

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Filter decides which labels are identity-relevant (Cilium's `labels`
// setting). The zero value is not usable; use NewFilter or DefaultFilter.
type Filter struct {
	patterns []pattern
	// allowList is set once a custom inclusive pattern is given: then a
	// label counts only if an inclusive pattern matches it.
	allowList bool

	// verdicts remembers Relevant per source and key (the value plays no
	// part): every compilation asks again for the same few keys. Bounded,
	// since keys are user input.
	mu       sync.Mutex
	verdicts map[string]bool
}

const maxVerdicts = 1 << 16

type pattern struct {
	text   string
	source string // "" matches any source
	expr   *regexp.Regexp
	ignore bool
}

// Cilium's defaults: namespace and app.kubernetes.io labels count, other
// Kubernetes-owned and churning labels do not.
var defaultPatterns = []string{
	`io\.kubernetes\.pod\.namespace`,
	`io\.cilium\.k8s\.namespace\.labels`,
	`app\.kubernetes\.io`,
	`!io\.kubernetes`,
	`!kubernetes\.io`,
	`!statefulset\.kubernetes\.io/pod-name`,
	`!apps\.kubernetes\.io/pod-index`,
	`!batch\.kubernetes\.io/job-completion-index`,
	`!batch\.kubernetes\.io/controller-uid`,
	`!.*beta\.kubernetes\.io`,
	`!k8s\.io`,
	`!pod-template-generation`,
	`!pod-template-hash`,
	`!controller-revision-hash`,
	`!annotation.*`,
	`!controller-uid`,
	`!etcd_node`,
}

// What allow-list mode always keeps.
var allowListPatterns = []string{
	`reserved:.*`,
	`io\.kubernetes\.pod\.namespace`,
	`io\.cilium\.k8s\.namespace\.labels`,
	`io\.cilium\.k8s\.policy\.cluster`,
	`io\.cilium\.k8s\.policy\.serviceaccount`,
	`app\.kubernetes\.io`,
}

// DefaultFilter returns a Filter with Cilium's default patterns only.
func DefaultFilter() *Filter {
	f, err := NewFilter(nil)
	if err != nil {
		panic(err) // the defaults are constants
	}
	return f
}

// NewFilter returns a Filter of Cilium's defaults followed by custom
// patterns, as the `labels` setting gives them: "[source:][!]regex", e.g.
// "k8s:app", "!team", `^kind$`. An invalid pattern is an error naming it.
func NewFilter(custom []string) (*Filter, error) {
	f := &Filter{}
	for _, p := range defaultPatterns {
		if err := f.add(p); err != nil {
			return nil, err
		}
	}
	for _, p := range custom {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if err := f.add(p); err != nil {
			return nil, err
		}
		if !f.patterns[len(f.patterns)-1].ignore {
			f.allowList = true
		}
	}
	if f.allowList {
		for _, p := range allowListPatterns {
			if err := f.add(p); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

func (f *Filter) add(text string) error {
	p := pattern{text: text}
	expr := text
	if i := strings.IndexByte(text, ':'); i >= 0 {
		p.source, expr = text[:i], text[i+1:]
		if p.source == SourceAny {
			p.source = ""
		}
	}
	if strings.HasPrefix(expr, "!") {
		p.ignore, expr = true, expr[1:]
	}
	if expr == "" {
		return fmt.Errorf("label pattern %q: empty expression", text)
	}
	re, err := regexp.Compile(`^(?:` + expr + `)`)
	if err != nil {
		return fmt.Errorf("label pattern %q: %w", text, err)
	}
	p.expr = re
	f.patterns = append(f.patterns, p)
	return nil
}

// Relevant reports whether l counts for identity. Reserved labels always
// do.
func (f *Filter) Relevant(l Label) bool {
	if l.Source == SourceReserved || l.Source == SourceCIDR {
		return true
	}
	k := l.Source + "\x00" + l.Key
	f.mu.Lock()
	v, ok := f.verdicts[k]
	f.mu.Unlock()
	if ok {
		return v
	}
	v = f.relevant(l)
	f.mu.Lock()
	if f.verdicts == nil || len(f.verdicts) >= maxVerdicts {
		f.verdicts = make(map[string]bool)
	}
	f.verdicts[k] = v
	f.mu.Unlock()
	return v
}

func (f *Filter) relevant(l Label) bool {
	include, ignore := 0, 0
	for _, p := range f.patterns {
		if p.source != "" && p.source != l.Source {
			continue
		}
		loc := p.expr.FindStringIndex(l.Key)
		if loc == nil {
			continue
		}
		n := loc[1]
		if p.ignore {
			if ignore == 0 || n < ignore {
				ignore = n
			}
		} else if n > include {
			include = n
		}
	}
	if !f.allowList && ignore == 0 {
		return true
	}
	return include > ignore
}

// Apply returns the identity-relevant subset of ls.
func (f *Filter) Apply(ls Labels) Labels {
	out := make(Labels, 0, len(ls))
	for _, l := range ls {
		if f.Relevant(l) {
			out = append(out, l)
		}
	}
	return out
}
