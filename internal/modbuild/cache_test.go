package modbuild

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCache is a Cache over a fresh repository with a one-file nested
// module, and the key of its inputs.
func testCache(t *testing.T) (Cache, string) {
	t.Helper()
	root := t.TempDir()
	mod := filepath.Join(root, "tools", "m")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Cache{Root: root, Module: "tools/m", Prefix: "tool", Extra: "flags", GoEnv: []string{"GOVERSION"}}
	k, err := Key(root, "tools/m", "flags", "GOVERSION")
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// writeOutput is a build that writes one output file and a note.
func writeOutput(dir string) ([]byte, error) {
	if err := os.WriteFile(filepath.Join(dir, "out"), []byte("binary"), 0o644); err != nil {
		return nil, err
	}
	return []byte("note\n"), nil
}

// TestCacheBuildMarksComplete: a build goes into
// conformance/.cache/<prefix>-<key> (the names existing caches have), is
// found afterwards with its note, and is not run again.
func TestCacheBuildMarksComplete(t *testing.T) {
	c, k := testCache(t)
	if _, _, ok := c.Find(); ok {
		t.Fatal("found a build before any ran")
	}
	dir, note, err := c.Build(writeOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(c.Root, "conformance", ".cache", "tool-"+k)
	if dir != want || string(note) != "note\n" {
		t.Fatalf("Build = %q, %q; want %q, %q", dir, note, want, "note\n")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "complete")); err != nil || string(b) != "note\n" {
		t.Fatalf("complete marker: %q, %v", b, err)
	}
	fdir, fnote, ok := c.Find()
	if !ok || fdir != dir || string(fnote) != "note\n" {
		t.Fatalf("Find after the build = %q, %q, %v", fdir, fnote, ok)
	}
	dir2, note2, err := c.Build(func(string) ([]byte, error) {
		t.Error("a complete build ran again")
		return nil, nil
	})
	if err != nil || dir2 != dir || string(note2) != "note\n" {
		t.Fatalf("second Build = %q, %q, %v", dir2, note2, err)
	}
}

// TestCacheConcurrentBuildsShareOne: callers arriving together run one
// build between them, never two at once, and all get its result.
func TestCacheConcurrentBuildsShareOne(t *testing.T) {
	c, _ := testCache(t)
	var runs, inside, overlapped atomic.Int32
	build := func(dir string) ([]byte, error) {
		runs.Add(1)
		if inside.Add(1) > 1 {
			overlapped.Store(1)
		}
		defer inside.Add(-1)
		// Long enough for the other callers to arrive while it runs.
		time.Sleep(100 * time.Millisecond)
		return writeOutput(dir)
	}
	const callers = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, callers)
	notes := make([]string, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, n, err := c.Build(build)
			errs[i], notes[i] = err, string(n)
		}()
	}
	close(start)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || notes[i] != "note\n" {
			t.Errorf("caller %d: note %q, error %v", i, notes[i], errs[i])
		}
	}
	if n := runs.Load(); n != 1 || overlapped.Load() != 0 {
		t.Fatalf("%d builds ran (overlapping: %v), want one", n, overlapped.Load() != 0)
	}
}

// TestCacheBuildRemovesEarlierBuilds: a new build removes the tool's
// builds of other inputs, complete or not, and nothing else in the cache.
func TestCacheBuildRemovesEarlierBuilds(t *testing.T) {
	c, k := testCache(t)
	cache := filepath.Join(c.Root, CacheDir)
	for _, d := range []string{"tool-0123456789abcdef", "tool-unfinished", "other-0123456789abcdef", "toolbox"} {
		if err := os.MkdirAll(filepath.Join(cache, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cache, d, "complete"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.Build(writeOutput); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"other-0123456789abcdef", "tool-" + k, "toolbox"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("cache holds %q, want %q", got, want)
	}
}

// TestCacheFailedBuildNotComplete: a failed build returns its error, is
// not found, leaves the earlier build in place, and runs again next time.
func TestCacheFailedBuildNotComplete(t *testing.T) {
	c, _ := testCache(t)
	earlier := filepath.Join(c.Root, CacheDir, "tool-0123456789abcdef")
	if err := os.MkdirAll(earlier, 0o755); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	dir, _, err := c.Build(func(dir string) ([]byte, error) {
		if _, err := writeOutput(dir); err != nil {
			t.Fatal(err)
		}
		return nil, boom
	})
	if !errors.Is(err, boom) || dir != "" {
		t.Fatalf("failed Build = %q, %v; want the build's error", dir, err)
	}
	if _, _, ok := c.Find(); ok {
		t.Fatal("a failed build was found")
	}
	if _, err := os.Stat(earlier); err != nil {
		t.Fatalf("a failed build removed an earlier one: %v", err)
	}
	ran := false
	if _, _, err := c.Build(func(dir string) ([]byte, error) { ran = true; return writeOutput(dir) }); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the build did not run again after a failure")
	}
	if _, _, ok := c.Find(); !ok {
		t.Fatal("the build that succeeded is not found")
	}
}

// TestCacheUsable: a complete build that Usable rejects (its files
// outside the cache are gone) is neither found nor kept: Build runs again.
func TestCacheUsable(t *testing.T) {
	c, _ := testCache(t)
	ext := filepath.Join(c.Root, "elsewhere")
	c.Usable = func(_ string, note []byte) bool {
		_, err := os.Stat(string(note))
		return err == nil
	}
	runs := 0
	build := func(dir string) ([]byte, error) {
		runs++
		if err := os.MkdirAll(ext, 0o755); err != nil {
			return nil, err
		}
		return []byte(ext), nil
	}
	if _, _, err := c.Build(build); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.Find(); !ok {
		t.Fatal("a usable build is not found")
	}
	if err := os.Remove(ext); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.Find(); ok {
		t.Fatal("a build Usable rejects was found")
	}
	if _, _, err := c.Build(build); err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Fatalf("%d builds ran, want 2 (the rejected one rebuilt)", runs)
	}
}
