package gateway

// nameSet remembers names, each with a value, for the duplicate checks
// of one list (the header names of a match or of a header filter): in an
// array while there are a few, the usual case, and in a map past that,
// since lists are input of any length and must not cost a scan per name.
// Matches and filters come by the thousand, and a map per list was a few
// percent of a cold translation. The zero value is empty and ready.
type nameSet[V any] struct {
	few  [8]nameEntry[V]
	n    int
	many map[string]V
}

type nameEntry[V any] struct {
	name string
	v    V
}

// get returns the value of name, if it is there.
func (s *nameSet[V]) get(name string) (V, bool) {
	if s.many != nil {
		v, ok := s.many[name]
		return v, ok
	}
	for i := range s.n {
		if s.few[i].name == name {
			return s.few[i].v, true
		}
	}
	var zero V
	return zero, false
}

// has reports whether name is there.
func (s *nameSet[V]) has(name string) bool {
	_, ok := s.get(name)
	return ok
}

// add records name, which must not be there yet, with v.
func (s *nameSet[V]) add(name string, v V) {
	if s.many == nil {
		if s.n < len(s.few) {
			s.few[s.n] = nameEntry[V]{name, v}
			s.n++
			return
		}
		s.many = make(map[string]V, 2*len(s.few))
		for _, e := range s.few[:s.n] {
			s.many[e.name] = e.v
		}
	}
	s.many[name] = v
}
