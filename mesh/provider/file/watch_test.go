package file

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordExamined records the config files the provider looks at from now
// until the test ends.
func recordExamined(t *testing.T) (taken func() []string) {
	var mu sync.Mutex
	var names []string
	examining = func(name string) {
		mu.Lock()
		names = append(names, name)
		mu.Unlock()
	}
	t.Cleanup(func() { examining = nil })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := names
		names = nil
		slices.Sort(out)
		return slices.Compact(out)
	}
}

func svcNamed(name string, port int) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\nspec: {ports: [{port: %d}]}\n", name, port)
}

func replaceFile(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	must(t, os.WriteFile(tmp, []byte(content), 0o644))
	must(t, os.Rename(tmp, filepath.Join(dir, name)))
}

// TestEventsReadOnlyNamedFiles: a read after inotify events looks at the
// files the events named and at symbolic links (whose targets change
// without an event in the folder), not at the rest of the folder — even
// right after the folder was written, when the files' stamps are too
// recent to stand for their content and a rescan would read every one.
func TestEventsReadOnlyNamedFiles(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	for i := range 50 {
		write(t, dir, fmt.Sprintf("s%02d.yaml", i), svcNamed(fmt.Sprintf("s%02d", i), 80))
	}
	write(t, outside, "target.yaml", svcNamed("linked", 80))
	must(t, os.Symlink(filepath.Join(outside, "target.yaml"), filepath.Join(dir, "link.yaml")))
	examined := recordExamined(t)
	next := watchResults(t, dir, WithRescanInterval(0))
	if r := next(); len(r.Snapshot.Services) != 51 || len(r.Errors) > 0 {
		t.Fatalf("initial: %d services, errors %q; want 51 and none", len(r.Snapshot.Services), r.Errors)
	}
	if got := len(examined()); got != 51 {
		t.Fatalf("the first read looked at %d files, want all 51", got)
	}
	port := func(r *Result, name string) int32 {
		for _, s := range r.Snapshot.Services {
			if s.Name == name {
				return s.Spec.Ports[0].Port
			}
		}
		t.Fatalf("no service %s", name)
		return 0
	}

	replaceFile(t, dir, "s07.yaml", svcNamed("s07", 81))
	r := next()
	if port(r, "s07") != 81 || len(r.Snapshot.Services) != 51 {
		t.Fatalf("after editing s07: port %d, %d services", port(r, "s07"), len(r.Snapshot.Services))
	}
	if got := examined(); !slices.Equal(got, []string{"link.yaml", "s07.yaml"}) {
		t.Fatalf("an edit of s07.yaml looked at %q, want only it and the symbolic link", got)
	}

	// The link's target changes: no event in the folder, so nothing is
	// read until some other change; that read checks the link too.
	write(t, outside, "target.yaml", svcNamed("linked", 82))
	replaceFile(t, dir, "s08.yaml", svcNamed("s08", 81))
	r = next()
	if port(r, "s08") != 81 || port(r, "linked") != 82 {
		t.Fatalf("s08 on port %d, linked on %d; want 81 and 82", port(r, "s08"), port(r, "linked"))
	}

	// A removed file's objects go; a new file's come.
	must(t, os.Remove(filepath.Join(dir, "s09.yaml")))
	r = next()
	if len(r.Snapshot.Services) != 50 || strings.Contains(servicesOf(r), "s09") {
		t.Fatalf("after removing s09: %q", servicesOf(r))
	}
	replaceFile(t, dir, "new.yaml", svcNamed("new", 80))
	r = next()
	if len(r.Snapshot.Services) != 51 || port(r, "new") != 80 {
		t.Fatalf("after adding new.yaml: %q", servicesOf(r))
	}
	if got := examined(); slices.Contains(got, "s10.yaml") {
		t.Fatalf("reads after events looked at %q", got)
	}
}

// TestReadAfterAFailedReadCoversEveryFile: files named by events that
// came while the folder could not be read (here: over the file limit)
// are read once it can be, even if the events of the read that succeeds
// name only other files.
func TestReadAfterAFailedReadCoversEveryFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcNamed("a", 80))
	write(t, dir, "b.yaml", svcNamed("b", 80))
	// A settle long enough to gather both new files in one read.
	next := watchResults(t, dir, WithRescanInterval(0), WithMaxFiles(3), WithDebounce(time.Second, 500*time.Millisecond))
	if r := next(); servicesOf(r) != "a,b" {
		t.Fatalf("initial services %q", servicesOf(r))
	}
	replaceFile(t, dir, "c.yaml", svcNamed("c", 80))
	replaceFile(t, dir, "d.yaml", svcNamed("d", 80))
	if r := next(); servicesOf(r) != "a,b" || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "too many") {
		t.Fatalf("over the limit: services %q errors %q; want a,b and the limit", servicesOf(r), r.Errors)
	}
	must(t, os.Remove(filepath.Join(dir, "a.yaml")))
	if r := next(); servicesOf(r) != "b,c,d" || len(r.Errors) > 0 {
		t.Fatalf("back under the limit: services %q errors %q; want b,c,d and none", servicesOf(r), r.Errors)
	}
}
