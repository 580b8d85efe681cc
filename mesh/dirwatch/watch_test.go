package dirwatch

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wantedConfig is the file provider's rule: YAML and JSON files, not
// hidden.
func wantedConfig(name string) bool {
	return !strings.HasPrefix(name, ".") &&
		(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json"))
}

// next waits for the watch's next wake-up, bounded generously, and takes
// what the events said.
func next(t *testing.T, w *Watch) (whole, open bool) {
	t.Helper()
	select {
	case _, open = <-w.Wake:
		return w.Take().Whole, open
	case <-time.After(30 * time.Second):
		t.Fatal("no wake-up")
		return false, false
	}
}

// TestWatch: a wanted file renamed into place wakes the watch as written
// whole; a hidden temporary file written alone wakes it without that; the
// watch ends when the directory is removed, and stop ends it too.
func TestWatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ev, err := Start(dir, wantedConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Stop()
	if ev.ID == (ID{}) {
		t.Fatal("no identity for the watched directory")
	}
	tmp := filepath.Join(dir, ".tmp-1")
	if err := os.WriteFile(tmp, []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if whole, open := next(t, ev); !open || whole {
		t.Fatalf("a hidden file: whole=%v open=%v, want a plain wake-up", whole, open)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	// The rename may come in the batch after a pending wake-up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		whole, open := next(t, ev)
		if !open {
			t.Fatal("the watch ended on a rename into the directory")
		}
		if whole {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a file renamed into place was never reported written whole")
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for {
		if _, open := next(t, ev); !open {
			break
		}
	}

	other := t.TempDir()
	ev2, err := Start(other, wantedConfig)
	if err != nil {
		t.Fatal(err)
	}
	ev2.Stop()
	for {
		if _, open := next(t, ev2); !open {
			break
		}
	}
	if _, err := Start(filepath.Join(other, "missing"), wantedConfig); err == nil {
		t.Fatal("watching a missing directory succeeded")
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
	many := make([]ev, MaxNamed+1)
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
			var b Batch
			ended := parseEvents(encode(tc.evs...), &b, wantedConfig)
			var named []string
			for n := range b.Named {
				named = append(named, n)
			}
			slices.Sort(named)
			if ended != tc.ended || b.Whole != tc.whole || b.All != tc.all || !slices.Equal(named, tc.named) {
				t.Fatalf("ended %t whole %t all %t named %q; want %t %t %t %q",
					ended, b.Whole, b.All, named, tc.ended, tc.whole, tc.all, tc.named)
			}
		})
	}
	// Merging keeps the bound.
	var b Batch
	for i := range MaxNamed {
		b.Merge(Batch{Named: map[string]bool{fmt.Sprintf("f%d.yaml", i): true}})
	}
	if b.All || len(b.Named) != MaxNamed {
		t.Fatalf("after %d names: all %t, %d named", MaxNamed, b.All, len(b.Named))
	}
	b.Merge(Batch{Named: map[string]bool{"one-more.yaml": true}})
	if !b.All || b.Named != nil {
		t.Fatalf("past the bound: all %t, %d named; want all and none kept", b.All, len(b.Named))
	}
}
