package header

import (
	"strings"
	"testing"
)

func list(kv ...string) List {
	var l List
	for i := 0; i < len(kv); i += 2 {
		l.Add([]byte(kv[i]), []byte(kv[i+1]))
	}
	return l
}

func render(l List) string {
	var parts []string
	for _, f := range l {
		parts = append(parts, string(f.Name)+"="+string(f.Value))
	}
	return strings.Join(parts, " ")
}

func TestMutationActions(t *testing.T) {
	m := &Mutation{
		Remove: [][]byte{[]byte("x-gone")},
		Add: []Op{
			{Name: []byte("x-app"), Value: []byte("2"), Action: AppendIfExistsOrAdd},
			{Name: []byte("x-abs"), Value: []byte("2"), Action: AddIfAbsent},
			{Name: []byte("x-new"), Value: []byte("2"), Action: AddIfAbsent},
			{Name: []byte("x-ovr"), Value: []byte("2"), Action: OverwriteIfExistsOrAdd},
			{Name: []byte("x-oie"), Value: []byte("2"), Action: OverwriteIfExists},
			{Name: []byte("x-none"), Value: []byte("2"), Action: OverwriteIfExists},
			// Removes happen before adds: an add of a removed name is kept.
			{Name: []byte("x-gone"), Value: []byte("back"), Action: AppendIfExistsOrAdd},
		},
	}
	l := list("x-app", "1", "x-abs", "1", "x-ovr", "1", "x-ovr", "1b", "x-oie", "1", "x-gone", "1", "x-keep", "k")
	m.Apply(&l)
	want := "x-app=1 x-abs=1 x-keep=k x-app=2 x-new=2 x-ovr=2 x-oie=2 x-gone=back"
	if got := render(l); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestJoined(t *testing.T) {
	l := list("a", "1", "b", "x", "a", "2")
	v, _, ok := l.Joined("a", nil)
	if !ok || string(v) != "1,2" {
		t.Fatalf("joined %q %v", v, ok)
	}
	if _, _, ok := l.Joined("c", nil); ok {
		t.Fatal("missing header found")
	}
}
