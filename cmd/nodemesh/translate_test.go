package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/mesh/provider/file"
)

// TestTranslateReadsOnlyBoundedRegularFiles: offline translation reads
// files as the agent does. A FIFO (which would block a plain read until a
// writer came), /dev/zero behind a symbolic link (endless) and a sparse
// file past the size limit are refused with an error naming the file,
// quickly; a regular file beside them is read.
func TestTranslateReadsOnlyBoundedRegularFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse.yaml")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if objs, err := readObjects([]string{good}); err != nil || len(objs) != 1 {
		t.Fatalf("regular file: %d objects, %v", len(objs), err)
	}
	for name, want := range map[string]error{fifo: file.ErrNotRegular, zero: file.ErrNotRegular, sparse: file.ErrTooLarge} {
		done := make(chan error, 1)
		go func() { _, err := readObjects([]string{name}); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, want) || !strings.Contains(err.Error(), filepath.Base(name)) {
				t.Errorf("%s: %v, want %v naming the file", filepath.Base(name), err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the read hangs", filepath.Base(name))
		}
	}
	// A directory holding them fails as a whole, naming the first bad file.
	if _, err := readObjects([]string{dir}); err == nil {
		t.Fatal("a directory with a FIFO in it translated without an error")
	}
}
