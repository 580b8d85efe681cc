package header

import "bytes"

// Field is one header line. Name is lower-case.
type Field struct {
	Name  []byte
	Value []byte
}

// List is an ordered header list; repeated names keep their order.
type List []Field

// Get returns the value of the first field called name.
func (l List) Get(name string) ([]byte, bool) {
	for i := range l {
		if string(l[i].Name) == name {
			return l[i].Value, true
		}
	}
	return nil, false
}

// Has reports whether a field called name is present.
func (l List) Has(name string) bool {
	_, ok := l.Get(name)
	return ok
}

// Count returns how many fields are called name.
func (l List) Count(name string) int {
	n := 0
	for i := range l {
		if string(l[i].Name) == name {
			n++
		}
	}
	return n
}

// Joined returns all values of name joined with ",", as Envoy's header
// matchers see a repeated header. A single value is returned without copying;
// several are appended to scratch, which is returned for reuse.
func (l List) Joined(name string, scratch []byte) (value, buf []byte, ok bool) {
	first := -1
	for i := range l {
		if string(l[i].Name) != name {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if !ok {
			scratch = append(scratch[:0], l[first].Value...)
			ok = true
		}
		scratch = append(scratch, ',')
		scratch = append(scratch, l[i].Value...)
	}
	if ok {
		return scratch, scratch, true
	}
	if first >= 0 {
		return l[first].Value, scratch, true
	}
	return nil, scratch, false
}

// Del removes every field called name, keeping the order of the others.
func (l *List) Del(name string) {
	s := *l
	j := 0
	for i := range s {
		if string(s[i].Name) == name {
			continue
		}
		s[j] = s[i]
		j++
	}
	for k := j; k < len(s); k++ {
		s[k] = Field{}
	}
	*l = s[:j]
}

// DelBytes is Del for a name held as bytes.
func (l *List) DelBytes(name []byte) {
	s := *l
	j := 0
	for i := range s {
		if bytes.Equal(s[i].Name, name) {
			continue
		}
		s[j] = s[i]
		j++
	}
	for k := j; k < len(s); k++ {
		s[k] = Field{}
	}
	*l = s[:j]
}

// Set replaces every field called name by one field with value.
func (l *List) Set(name, value []byte) {
	l.DelBytes(name)
	*l = append(*l, Field{Name: name, Value: value})
}

// Add appends a field.
func (l *List) Add(name, value []byte) {
	*l = append(*l, Field{Name: name, Value: value})
}

// LowerASCII lower-cases b in place.
func LowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
}

// EqualFold reports whether b equals the lower-case ASCII string s ignoring
// the case of b.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
