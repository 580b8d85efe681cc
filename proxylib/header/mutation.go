package header

// Action is Envoy's HeaderValueOption.HeaderAppendAction.
type Action uint8

// The append actions, numbered as in Envoy's API.
const (
	AppendIfExistsOrAdd    Action = 0
	AddIfAbsent            Action = 1
	OverwriteIfExistsOrAdd Action = 2
	OverwriteIfExists      Action = 3
)

// Op is one compiled header addition.
type Op struct {
	Name   []byte // lower-case
	Value  []byte
	Action Action
}

// Mutation is a compiled set of header edits: removes first, then adds, in
// configuration order, as Envoy applies them.
type Mutation struct {
	Remove [][]byte // lower-case names
	Add    []Op
}

// Empty reports whether the mutation changes nothing.
func (m *Mutation) Empty() bool { return m == nil || (len(m.Remove) == 0 && len(m.Add) == 0) }

// Apply edits l in place. Values are referenced, not copied: they live in
// immutable configuration.
func (m *Mutation) Apply(l *List) {
	if m == nil {
		return
	}
	for _, n := range m.Remove {
		l.DelBytes(n)
	}
	for i := range m.Add {
		op := &m.Add[i]
		switch op.Action {
		case AppendIfExistsOrAdd:
			l.Add(op.Name, op.Value)
		case AddIfAbsent:
			if !l.Has(string(op.Name)) {
				l.Add(op.Name, op.Value)
			}
		case OverwriteIfExistsOrAdd:
			l.Set(op.Name, op.Value)
		case OverwriteIfExists:
			if l.Has(string(op.Name)) {
				l.Set(op.Name, op.Value)
			}
		}
	}
}
