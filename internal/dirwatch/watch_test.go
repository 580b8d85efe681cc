package dirwatch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func wantedYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") && !strings.HasPrefix(name, ".")
}

// next waits for the watch's next wake-up, bounded generously.
func next(t *testing.T, ev <-chan bool) (whole, open bool) {
	t.Helper()
	select {
	case whole, open = <-ev:
		return whole, open
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
	ev, stop, id, err := Watch(dir, wantedYAML)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if id == (ID{}) {
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
	ev2, stop2, _, err := Watch(other, wantedYAML)
	if err != nil {
		t.Fatal(err)
	}
	stop2()
	for {
		if _, open := next(t, ev2); !open {
			break
		}
	}
	if _, _, _, err := Watch(filepath.Join(other, "missing"), wantedYAML); err == nil {
		t.Fatal("watching a missing directory succeeded")
	}
}
