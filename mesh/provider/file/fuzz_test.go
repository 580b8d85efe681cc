package file

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// FuzzLoad puts arbitrary bytes in a config file next to a good one: Load
// must never fail or panic, must keep the good file's objects, must report
// the bad file within the bounds on error text, and must return to the
// good file alone once the fuzzed one is removed.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"../../input/testdata/*", "../../../examples/quickstart/*.yaml", "../../../gateway/testdata/*/*.in.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(svcB))
	f.Add([]byte(svcA)) // collides with a.yaml
	f.Add([]byte("---\n---\nkind: Widget\n---\napiVersion: v1\n"))
	aObjs, err := input.Decode("a.yaml", []byte(svcA))
	if err != nil {
		f.Fatal(err)
	}
	// The longest text describe can produce.
	const maxErr = maxProblems*(maxProblemBytes+len(" ... (truncated)")+1) + 64
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		write(t, dir, "a.yaml", svcA)
		p := New(dir)
		if r, err := p.Load(); err != nil || servicesOf(r) != "a" || len(r.Errors) > 0 {
			t.Fatalf("good directory: %v %v", err, r)
		}
		write(t, dir, "fuzz.yaml", string(data))
		r, err := p.Load()
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		hasA := false
		for _, s := range r.Snapshot.Services {
			hasA = hasA || (s.Namespace == "default" && s.Name == "a")
		}
		if !hasA {
			t.Fatalf("service default/a lost; services %q, errors %q", servicesOf(r), r.Errors)
		}
		wantErr := true
		if objs, err := input.Decode("fuzz.yaml", data); err == nil {
			_, err = input.Build(append(append([]input.Object{}, aObjs...), objs...))
			wantErr = err != nil
		}
		if (len(r.Errors) > 0) != wantErr {
			t.Fatalf("errors = %q, want errors: %v", r.Errors, wantErr)
		}
		for _, e := range r.Errors {
			if len(e) > maxErr {
				t.Fatalf("error of %d bytes, the bound is %d", len(e), maxErr)
			}
		}
		if err := os.Remove(filepath.Join(dir, "fuzz.yaml")); err != nil {
			t.Fatal(err)
		}
		if r, err := p.Load(); err != nil || servicesOf(r) != "a" || len(r.Errors) > 0 || len(r.Snapshot.Services) != 1 {
			t.Fatalf("after removing the fuzzed file: %v, services %q, errors %q", err, servicesOf(r), r.Errors)
		}
	})
}
