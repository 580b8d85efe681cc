package file

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deadline bounds every read of the directory in these tests: a read that
// blocks (a FIFO) or never ends (/dev/zero) fails the test instead of
// hanging it. Generous, because the machine may be busy.
const deadline = 20 * time.Second

// loadWithin runs p.Load and fails the test if it does not return in time.
// On timeout the goroutine is abandoned; the test binary ends soon after.
func loadWithin(t *testing.T, p *Provider) (*Result, error) {
	t.Helper()
	type out struct {
		r   *Result
		err error
	}
	c := make(chan out, 1)
	go func() {
		r, err := p.Load()
		c <- out{r, err}
	}()
	select {
	case o := <-c:
		return o.r, o.err
	case <-time.After(deadline):
		t.Fatalf("Load did not return within %v", deadline)
		return nil, nil
	}
}

// mustLoad loads and checks the services and that the errors are exactly
// one per name in errFor, each containing the corresponding text.
func mustLoad(t *testing.T, p *Provider, services string, errFor map[string]string) {
	t.Helper()
	r, err := loadWithin(t, p)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := servicesOf(r); got != services {
		t.Errorf("services = %q, want %q", got, services)
	}
	if len(r.Errors) != len(errFor) {
		t.Fatalf("errors = %q, want %d", r.Errors, len(errFor))
	}
	for name, text := range errFor {
		found := false
		for _, e := range r.Errors {
			if strings.HasPrefix(e, name+":") && strings.Contains(e, text) {
				found = true
			}
		}
		if !found {
			t.Errorf("errors = %q, want one for %s containing %q", r.Errors, name, text)
		}
	}
}

func servicesOf(r *Result) string {
	var names []string
	for _, s := range r.Snapshot.Services {
		names = append(names, s.Name)
	}
	return strings.Join(names, ",")
}

// oddFiles are directory entries named like config files that are not a
// regular file the provider may read, and what the error must say.
var oddFiles = []struct {
	name   string
	make   func(t *testing.T, dir, path string)
	reason string
}{
	{"fifo", func(t *testing.T, _, path string) {
		must(t, unix.Mkfifo(path, 0o644))
	}, "not a regular file (named pipe)"},
	{"symlink to /dev/zero", func(t *testing.T, _, path string) {
		must(t, os.Symlink("/dev/zero", path))
	}, "not a regular file (character device): /dev/zero"},
	{"block device", func(t *testing.T, _, path string) {
		if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
			t.Skipf("creating a block device node: %v", err)
		}
	}, "not a regular file (block device)"},
	{"socket", func(t *testing.T, _, path string) {
		l, err := net.Listen("unix", path)
		must(t, err)
		t.Cleanup(func() { l.Close() })
	}, "not a regular file (socket)"},
	{"symlink loop", func(t *testing.T, dir, path string) {
		must(t, os.Symlink(path+".loop", path))
		must(t, os.Symlink(path, path+".loop"))
	}, "too many levels of symbolic links"},
	{"dangling symlink", func(t *testing.T, dir, path string) {
		must(t, os.Symlink(filepath.Join(dir, "gone.txt"), path))
	}, "symbolic link to a missing file"},
	{"symlink to a directory", func(t *testing.T, _, path string) {
		must(t, os.Mkdir(path+".d", 0o755))
		must(t, os.Symlink(path+".d", path))
	}, "not a regular file (directory)"},
	{"directory named like YAML", func(t *testing.T, _, path string) {
		must(t, os.Mkdir(path, 0o755))
	}, "not a regular file (directory)"},
	{"sparse 4 GiB file", func(t *testing.T, _, path string) {
		f, err := os.Create(path)
		must(t, err)
		must(t, f.Truncate(4<<30))
		must(t, f.Close())
	}, "file too large: 4294967296 bytes"},
	// A regular file that reports size 0 and yields gigabytes: what a file
	// growing while it is read looks like to the reader.
	{"more content than its size", func(t *testing.T, _, path string) {
		must(t, os.Symlink("/proc/self/pagemap", path))
	}, "file too large: more than"},
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLoadSkipsWhatIsNotARegularFile puts each odd entry in place of a
// good file and next to it: Load must return promptly, report the file,
// keep the other file and the good file's last good version, and recover
// once the good file is back.
func TestLoadSkipsWhatIsNotARegularFile(t *testing.T) { testOddFiles(t) }

func testOddFiles(t *testing.T) {
	for _, tc := range oddFiles {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "a.yaml", svcA)
			write(t, dir, "b.yaml", svcB)
			p := New(dir)
			mustLoad(t, p, "a,b", nil)

			// In place of a file that was good: its objects stay.
			b := filepath.Join(dir, "b.yaml")
			must(t, os.Remove(b))
			tc.make(t, dir, b)
			mustLoad(t, p, "a,b", map[string]string{"b.yaml": tc.reason})
			// Reading again changes nothing (and still does not block).
			mustLoad(t, p, "a,b", map[string]string{"b.yaml": tc.reason})

			// The same good content back clears the error.
			must(t, os.RemoveAll(b))
			write(t, dir, "b.yaml", svcB)
			mustLoad(t, p, "a,b", nil)

			// A new name that was never good contributes nothing.
			tc.make(t, dir, filepath.Join(dir, "c.yaml"))
			mustLoad(t, p, "a,b", map[string]string{"c.yaml": tc.reason})
		})
	}
}

// TestLoadRejectsAliasBomb: YAML aliases expanding to billions of nodes
// (the "billion laughs") are refused by the YAML library's alias budget;
// the file is reported and nothing else is affected.
func TestLoadRejectsAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: default}\nspec:\n  ports: [{port: 80}]\n")
	b.WriteString("  x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "  x%d: &x%d [", i, i)
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*x%d", i-1)
		}
		b.WriteString("]\n")
	}
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcA)
	write(t, dir, "b.yaml", b.String())
	mustLoad(t, New(dir), "a", map[string]string{"b.yaml": "excessive aliasing"})
}

// TestLoadBoundsErrorText: a file with thousands of bad documents, or a
// bad line of 100 KiB, yields an error of bounded size that still names
// the file and the first problems.
func TestLoadBoundsErrorText(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcA)
	write(t, dir, "many.yaml", strings.Repeat("---\nkind: Widget\n", 10000))
	write(t, dir, "long.yaml", "--- "+strings.Repeat("x", 100<<10)+"\n")
	r, err := loadWithin(t, New(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := servicesOf(r); got != "a" || len(r.Errors) != 2 {
		t.Fatalf("services = %q, errors = %d; want a and 2", got, len(r.Errors))
	}
	for i, want := range []string{"long.yaml:1 (document 1): content after the document separator", "many.yaml:2 (document 1): "} {
		e := r.Errors[i]
		if !strings.HasPrefix(e, want) || len(e) > 8<<10 {
			t.Errorf("error %d (%d bytes) = %.200q..., want at most 8 KiB starting %q", i, len(e), e, want)
		}
	}
	if !strings.HasSuffix(r.Errors[1], "(and 9990 more problems)") {
		t.Errorf("error for many.yaml ends %q, want the count of problems left out", r.Errors[1][max(0, len(r.Errors[1])-80):])
	}
}

// TestLoadTooManyFiles: a directory with more config files than the limit
// (10000) is not read at all, rather than partly; Load reports it and the
// state stays as it was.
func TestLoadTooManyFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcA)
	p := New(dir)
	mustLoad(t, p, "a", nil)
	for i := range 10000 {
		write(t, dir, fmt.Sprintf("empty-%05d.yaml", i), "")
	}
	// Other files do not count.
	write(t, dir, "notes.txt", "")
	_, err := loadWithin(t, p)
	if err == nil || !strings.Contains(err.Error(), "too many config files") {
		t.Fatalf("Load with 10001 config files: err = %v, want too many config files", err)
	}
	must(t, os.Remove(filepath.Join(dir, "empty-00000.yaml")))
	mustLoad(t, p, "a", nil)
}

// TestLoadAtomicReplace: files replaced by rename while being read are
// read whole, as either version, never mixed or failed.
func TestLoadAtomicReplace(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcA)
	// Big enough that a read takes many system calls.
	pad := "# " + strings.Repeat("x", 1<<20) + "\n"
	versions := []string{pad + svcB, pad + strings.Replace(svcB, "name: b", "name: c", 1)}
	write(t, dir, "b.yaml", versions[0])
	p := New(dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			tmp := filepath.Join(dir, ".b.yaml.tmp")
			if err := os.WriteFile(tmp, []byte(versions[i%2]), 0o644); err != nil {
				panic(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "b.yaml")); err != nil {
				panic(err)
			}
		}
	}()
	defer func() { cancel(); <-done }()
	seen := map[string]int{}
	for range 50 {
		r, err := loadWithin(t, p)
		if err != nil {
			t.Fatal(err)
		}
		got := servicesOf(r)
		if (got != "a,b" && got != "a,c") || len(r.Errors) > 0 {
			t.Fatalf("services = %q, errors = %q; want a,b or a,c and none", got, r.Errors)
		}
		seen[got]++
	}
	t.Logf("versions seen: %v", seen)
}

// watchResults starts Watch on dir and returns a function returning its
// next publication.
func watchResults(t *testing.T, dir string, opts ...Option) func() *Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan *Result, 16)
	done := make(chan error, 1)
	p := New(dir, opts...)
	go func() { done <- p.Watch(ctx, func(r *Result) { results <- r }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch returned %v", err)
		}
	})
	return func() *Result {
		t.Helper()
		select {
		case r := <-results:
			return r
		case err := <-done:
			t.Fatalf("Watch returned %v", err)
		case <-time.After(deadline):
			t.Fatal("no update from Watch")
		}
		return nil
	}
}

// TestWatchSurvivesLosingTheDirectory: the directory removed, replaced by
// a file or by a FIFO is published as an error with the last good
// snapshot, and a directory that comes back is read again.
func TestWatchSurvivesLosingTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	must(t, os.Mkdir(dir, 0o755))
	write(t, dir, "a.yaml", svcA)
	next := watchResults(t, dir, WithRescanInterval(100*time.Millisecond))
	if r := next(); servicesOf(r) != "a" || len(r.Errors) > 0 {
		t.Fatalf("initial services = %q errors = %q", servicesOf(r), r.Errors)
	}
	// lost waits for the error saying what; a rescan between the two
	// steps of a replacement may publish the error of the first step.
	lost := func(services, what string) {
		t.Helper()
		for {
			r := next()
			if servicesOf(r) != services || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "reading config directory") {
				t.Fatalf("services = %q errors = %q; want %s (last good) and an error saying %q", servicesOf(r), r.Errors, services, what)
			}
			if strings.Contains(r.Errors[0], what) {
				return
			}
		}
	}
	back := func(services string) {
		t.Helper()
		r := next()
		if servicesOf(r) != services || len(r.Errors) > 0 {
			t.Fatalf("services = %q errors = %q; want %s and none", servicesOf(r), r.Errors, services)
		}
	}
	restore := func(files ...string) {
		t.Helper()
		tmp := dir + ".new"
		must(t, os.Mkdir(tmp, 0o755))
		for _, f := range files {
			write(t, tmp, f+".yaml", map[string]string{"a": svcA, "b": svcB}[f])
		}
		must(t, os.Rename(tmp, dir))
	}

	must(t, os.RemoveAll(dir))
	lost("a", "no such file or directory")
	restore("a", "b")
	back("a,b")

	must(t, os.RemoveAll(dir))
	must(t, os.WriteFile(dir, []byte(svcA), 0o644))
	lost("a,b", "not a directory")
	must(t, os.Remove(dir))
	restore("a")
	back("a")

	must(t, os.RemoveAll(dir))
	must(t, unix.Mkfifo(dir, 0o644))
	lost("a", "not a directory")
	must(t, os.Remove(dir))
	restore("a", "b")
	back("a,b")
}

// TestWatchFollowsTheDirectoryPath: after the directory is deleted or
// moved away, or the symbolic link it is reached through changes, inotify
// watches the directory the path names now (no rescans here to hide a
// stale watch).
func TestWatchFollowsTheDirectoryPath(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "conf")
	must(t, os.Mkdir(dir, 0o755))
	write(t, dir, "a.yaml", svcA)
	next := watchResults(t, dir, WithRescanInterval(time.Hour))
	if r := next(); servicesOf(r) != "a" {
		t.Fatalf("initial services = %q", servicesOf(r))
	}
	expect := func(services string, errs int) {
		t.Helper()
		r := next()
		if servicesOf(r) != services || len(r.Errors) != errs {
			t.Fatalf("services = %q errors = %q; want %s and %d errors", servicesOf(r), r.Errors, services, errs)
		}
	}

	// Deleted: seen through inotify alone.
	must(t, os.RemoveAll(dir))
	expect("a", 1)

	// Moved away and replaced: the old watch ends; the new directory is
	// read and watched.
	must(t, os.Mkdir(dir, 0o755))
	write(t, dir, "a.yaml", svcA)
	// (Nothing watches the path while it is missing; the rescan would
	// find it. Start the next watch by hand: a provider on a path that
	// exists from the start.)
	next = watchResults(t, dir, WithRescanInterval(time.Hour))
	expect("a", 0)
	must(t, os.Mkdir(dir+".new", 0o755))
	write(t, dir+".new", "b.yaml", svcB)
	must(t, os.Rename(dir, dir+".old"))
	must(t, os.Rename(dir+".new", dir))
	expect("b", 0)
	write(t, dir, "a.yaml", svcA)
	expect("a,b", 0)

	// Reached through a symbolic link that is switched to another
	// directory: an event in the old directory triggers the read that
	// notices, and from then on the new one is watched.
	v1, v2, link := filepath.Join(root, "v1"), filepath.Join(root, "v2"), filepath.Join(root, "link")
	must(t, os.Mkdir(v1, 0o755))
	must(t, os.Mkdir(v2, 0o755))
	write(t, v1, "a.yaml", svcA)
	write(t, v2, "b.yaml", svcB)
	must(t, os.Symlink(v1, link))
	next = watchResults(t, link, WithRescanInterval(time.Hour))
	expect("a", 0)
	must(t, os.Symlink(v2, link+".tmp"))
	must(t, os.Rename(link+".tmp", link))
	write(t, v1, "poke.yaml", "")
	expect("b", 0)
	write(t, v2, "a.yaml", svcA)
	expect("a,b", 0)
}
