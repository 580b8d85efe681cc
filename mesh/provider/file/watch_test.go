package file

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestEventBatches: what a buffer of inotify events says: the config
// files named, whether one was written whole, and when the events cannot
// be narrowed to names.
func TestEventBatches(t *testing.T) {
	type ev struct {
		mask uint32
		name string
	}
	encode := func(evs ...ev) []byte {
		var buf []byte
		for _, e := range evs {
			// Names are NUL-padded to a multiple of 16, as the kernel does.
			n := 0
			if e.name != "" {
				n = (len(e.name)/16 + 1) * 16
			}
			var hdr [unix.SizeofInotifyEvent]byte
			binary.NativeEndian.PutUint32(hdr[0:], 1)
			binary.NativeEndian.PutUint32(hdr[4:], e.mask)
			binary.NativeEndian.PutUint32(hdr[12:], uint32(n))
			buf = append(buf, hdr[:]...)
			name := make([]byte, n)
			copy(name, e.name)
			buf = append(buf, name...)
		}
		return buf
	}
	many := make([]ev, maxNamed+1)
	for i := range many {
		many[i] = ev{unix.IN_MODIFY, fmt.Sprintf("f%d.yaml", i)}
	}
	for _, tc := range []struct {
		name  string
		evs   []ev
		whole bool
		all   bool
		named []string
		ended bool
	}{
		{name: "rename into place", evs: []ev{{unix.IN_CREATE, ".tmp-a.yaml"}, {unix.IN_CLOSE_WRITE, ".tmp-a.yaml"},
			{unix.IN_MOVED_FROM, ".tmp-a.yaml"}, {unix.IN_MOVED_TO, "a.yaml"}}, whole: true, named: []string{"a.yaml"}},
		{name: "write in progress", evs: []ev{{unix.IN_CREATE, "b.yml"}, {unix.IN_MODIFY, "b.yml"}}, named: []string{"b.yml"}},
		{name: "removal and attributes", evs: []ev{{unix.IN_DELETE, "c.json"}, {unix.IN_ATTRIB, "d.yaml"}, {unix.IN_MODIFY, "notes.txt"}},
			named: []string{"c.json", "d.yaml"}},
		{name: "directory named like a config file", evs: []ev{{unix.IN_CREATE | unix.IN_ISDIR, "e.yaml"}}, named: []string{"e.yaml"}},
		{name: "queue overflow", evs: []ev{{unix.IN_MODIFY, "a.yaml"}, {unix.IN_Q_OVERFLOW, ""}}, all: true},
		{name: "the directory itself", evs: []ev{{unix.IN_ATTRIB, ""}, {unix.IN_MODIFY, "a.yaml"}}, all: true},
		{name: "too many names", evs: many, all: true},
		{name: "directory deleted", evs: []ev{{unix.IN_DELETE_SELF, ""}, {unix.IN_IGNORED, ""}}, all: true, ended: true},
		{name: "directory moved", evs: []ev{{unix.IN_MOVE_SELF, ""}}, ended: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b batch
			ended := parseEvents(encode(tc.evs...), &b)
			var named []string
			for n := range b.named {
				named = append(named, n)
			}
			slices.Sort(named)
			if ended != tc.ended || b.whole != tc.whole || b.all != tc.all || !slices.Equal(named, tc.named) {
				t.Fatalf("ended %t whole %t all %t named %q; want %t %t %t %q",
					ended, b.whole, b.all, named, tc.ended, tc.whole, tc.all, tc.named)
			}
		})
	}
	// Merging keeps the bound.
	var b batch
	for i := range maxNamed {
		b.merge(batch{named: map[string]bool{fmt.Sprintf("f%d.yaml", i): true}})
	}
	if b.all || len(b.named) != maxNamed {
		t.Fatalf("after %d names: all %t, %d named", maxNamed, b.all, len(b.named))
	}
	b.merge(batch{named: map[string]bool{"one-more.yaml": true}})
	if !b.all || b.named != nil {
		t.Fatalf("past the bound: all %t, %d named; want all and none kept", b.all, len(b.named))
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
