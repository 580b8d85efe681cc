package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const svcA = `apiVersion: v1
kind: Service
metadata: {name: a, namespace: default}
spec: {ports: [{port: 80}]}
`

const svcB = `apiVersion: v1
kind: Service
metadata: {name: b, namespace: default}
spec: {ports: [{port: 80}]}
`

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func services(r *Result) string {
	var names []string
	for _, s := range r.Snapshot.Services {
		names = append(names, s.Name)
	}
	return strings.Join(names, ",")
}

func TestLoadKeepsLastGoodPerFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcA)
	write(t, dir, "b.yml", svcB)
	write(t, dir, "notes.txt", "not config")
	write(t, dir, ".hidden.yaml", "{{{")
	p := New(dir)
	r, err := p.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := services(r); got != "a,b" || len(r.Errors) > 0 {
		t.Fatalf("services = %q, errors = %v; want a,b and no errors", got, r.Errors)
	}

	// A broken edit keeps a's last good objects and names the file.
	write(t, dir, "a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: oops}]}\n")
	r, _ = p.Load()
	if got := services(r); got != "a,b" {
		t.Errorf("after bad edit services = %q, want a,b (last good kept)", got)
	}
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "a.yaml") {
		t.Errorf("errors = %v, want one naming a.yaml", r.Errors)
	}

	// Unknown kinds are rejected, naming the kind.
	write(t, dir, "c.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
	r, _ = p.Load()
	if !strings.Contains(strings.Join(r.Errors, "\n"), "Widget") {
		t.Errorf("errors = %v, want one naming kind Widget", r.Errors)
	}

	// Fixing and deleting files converges.
	write(t, dir, "a.yaml", svcA)
	os.Remove(filepath.Join(dir, "b.yml"))
	os.Remove(filepath.Join(dir, "c.yaml"))
	r, _ = p.Load()
	if got := services(r); got != "a" || len(r.Errors) > 0 {
		t.Errorf("after fix+delete services = %q errors = %v, want a and none", got, r.Errors)
	}

	// The same object in two files is a collision, and the snapshot stays
	// the last good one.
	write(t, dir, "dup.yaml", svcA)
	r, _ = p.Load()
	if got := services(r); got != "a" || len(r.Errors) != 1 {
		t.Errorf("after duplicate services = %q errors = %v, want a and one error", got, r.Errors)
	}
}

func TestWatchAppliesEditsLive(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan *Result, 16)
	done := make(chan error, 1)
	// A long rescan interval proves inotify delivers the change.
	p := New(dir, WithRescanInterval(time.Hour))
	go func() { done <- p.Watch(ctx, func(r *Result) { results <- r }) }()

	next := func() *Result {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no update from Watch")
			return nil
		}
	}
	if got := services(next()); got != "a" {
		t.Fatalf("initial services = %q, want a", got)
	}
	write(t, dir, "b.yaml", svcB)
	if got := services(next()); got != "a,b" {
		t.Fatalf("after adding b services = %q, want a,b", got)
	}
	// Rewriting identical content publishes nothing.
	write(t, dir, "b.yaml", svcB)
	select {
	case r := <-results:
		t.Fatalf("unchanged content published %q", services(r))
	case <-time.After(300 * time.Millisecond):
	}
	// An atomic rename, as editors and `kubectl`-style tools do.
	tmp := filepath.Join(dir, ".b.yaml.tmp")
	os.WriteFile(tmp, []byte(strings.Replace(svcB, "name: b", "name: c", 1)), 0o644)
	os.Rename(tmp, filepath.Join(dir, "b.yaml"))
	if got := services(next()); got != "a,c" {
		t.Fatalf("after rename services = %q, want a,c", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch returned %v", err)
	}
}

func TestLoadMissingDirectory(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "nope")).Load(); err == nil {
		t.Fatal("Load of a missing directory succeeded")
	}
}

// TestEditKeepsUnchangedObjects: editing one document of a file yields a
// snapshot holding the very objects of the other documents (of that file
// and of untouched files), so translation downstream reuses its work for
// them; only the edited document's object is new.
func TestEditKeepsUnchangedObjects(t *testing.T) {
	dir := t.TempDir()
	svc := func(name string, port int) string {
		return strings.NewReplacer("NAME", name, "PORT", fmt.Sprint(port)).Replace(
			"apiVersion: v1\nkind: Service\nmetadata: {name: NAME, namespace: default}\nspec: {ports: [{port: PORT}]}\n")
	}
	many := func(edited int) string {
		var docs []string
		for i := range 20 {
			port := 80
			if i == 7 {
				port = edited
			}
			docs = append(docs, svc(fmt.Sprintf("s%02d", i), port))
		}
		return strings.Join(docs, "---\n")
	}
	write(t, dir, "many.yaml", many(80))
	write(t, dir, "other.yaml", svc("z", 80))
	p := New(dir)
	before, err := p.Load()
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "many.yaml", many(81))
	after, err := p.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Snapshot.Services) != 21 {
		t.Fatalf("%d services, want 21", len(after.Snapshot.Services))
	}
	for i, s := range after.Snapshot.Services {
		if same := s == before.Snapshot.Services[i]; same != (s.Name != "s07") {
			t.Errorf("service %s: same object %t", s.Name, same)
		}
	}
	if got := after.Snapshot.Services[7].Spec.Ports[0].Port; got != 81 {
		t.Errorf("edited service has port %d, want 81", got)
	}
}

// TestStampSkipsUnchangedFiles: a file whose stamp is the one it had when
// read is not read again; any write changes the stamp.
func TestStampSkipsUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	write(t, dir, "a.yaml", svcA)
	data, st, err := readChanged(path, DefaultMaxFileSize, nil)
	if err != nil || string(data) != svcA {
		t.Fatalf("first read: %q, %v", data, err)
	}
	if _, _, err := readChanged(path, DefaultMaxFileSize, &st); !errors.Is(err, errUnchanged) {
		t.Fatalf("unchanged file: got %v, want errUnchanged", err)
	}
	// Same size, new bytes: the change time moves (the test waits for
	// the next timestamp tick so the stamps can differ at all).
	time.Sleep(50 * time.Millisecond)
	write(t, dir, "a.yaml", svcB)
	data, _, err = readChanged(path, DefaultMaxFileSize, &st)
	if err != nil || string(data) != svcB {
		t.Fatalf("changed file: %q, %v", data, err)
	}
}

// TestRecentChangesAreNotTrusted: a file changed in the same timestamp
// tick as it was read keeps the stamp it was read with, so the stamp of a
// recently changed file does not stand for its content: such a file is
// read again on the next load.
func TestRecentChangesAreNotTrusted(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) stamp {
		return stamp{ctime: unix.NsecToTimespec(now.Add(-d).UnixNano())}
	}
	for _, tc := range []struct {
		age  time.Duration
		want bool
	}{{0, false}, {time.Millisecond, false}, {stampSlack / 2, false}, {stampSlack + time.Second, true}, {time.Hour, true}} {
		if got := trusted(now, at(tc.age)); got != tc.want {
			t.Errorf("changed %v before the read: trusted %t, want %t", tc.age, got, tc.want)
		}
	}
}

// TestWholeWritesSkipTheDebounce: with a debounce far longer than the
// test, a file renamed into the folder or closed after writing is still
// read, because such an event says the content is complete; a file still
// open for writing is not read until it is closed.
func TestWholeWritesSkipTheDebounce(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan *Result, 16)
	done := make(chan error, 1)
	p := New(dir, WithRescanInterval(0), WithDebounce(time.Hour, time.Millisecond))
	go func() { done <- p.Watch(ctx, func(r *Result) { results <- r }) }()
	next := func(what string) *Result {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no update from Watch", what)
			return nil
		}
	}
	if got := services(next("start")); got != "a" {
		t.Fatalf("initial services = %q, want a", got)
	}

	// Renamed into place.
	tmp := filepath.Join(dir, ".b.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(svcB), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	if got := services(next("rename")); got != "a,b" {
		t.Fatalf("after rename services = %q, want a,b", got)
	}

	// Written in place: nothing until the writer closes the file.
	f, err := os.OpenFile(filepath.Join(dir, "c.yaml"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Replace(svcB, "name: b", "name: c", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-results:
		t.Fatalf("a file still open for writing was read: services %q", services(r))
	case <-time.After(300 * time.Millisecond):
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := services(next("close")); got != "a,b,c" {
		t.Fatalf("after close services = %q, want a,b,c", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch returned %v", err)
	}
}
