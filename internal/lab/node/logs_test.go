package node

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLogRecords writes a process's two streams through real pipes into
// CRI records (a long line split into partial records, an unterminated
// last line kept) and reads them back as the kubelet serves them: text
// only, partial records joined, sinceTime, timestamps, tailLines and
// limitBytes applied.
func TestLogRecords(t *testing.T) {
	path := t.TempDir() + "/c.log"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	lf := &logFile{f: f}
	write := func(stream, text string) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { lf.copyStream(r, stream); r.Close(); close(done) }()
		w.WriteString(text)
		w.Close()
		<-done
	}
	long := strings.Repeat("x", maxLogLine+10)
	write("stdout", "first\n")
	mid := time.Now().UTC()
	write("stderr", "second\n"+long+"\nthird")
	f.Close()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5 (first, second, two parts of the long line, third):\n%.300s", len(recs), raw)
	}
	for i, want := range []string{" stdout F first", " stderr F second", " stderr P x", " stderr F x", " stderr F third"} {
		if _, rest, _ := strings.Cut(recs[i], " "); !strings.HasPrefix(" "+rest, want) {
			t.Errorf("record %d = %.60q, want it to start with a time and %q", i, recs[i], want)
		}
	}

	read := func(o logOptions) string {
		t.Helper()
		var b bytes.Buffer
		if err := writeLogs(&b, bytes.NewReader(raw), o); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	all := logOptions{tail: -1}
	if got, want := read(all), "first\nsecond\n"+long+"\nthird\n"; got != want {
		t.Errorf("all lines: got %.80q..., want %.80q...", got, want)
	}
	// mid is after the first record was written, and a second boundary
	// must not matter: records carry nanoseconds.
	if got, want := read(logOptions{tail: -1, since: mid}), "second\n"+long+"\nthird\n"; got != want {
		t.Errorf("since %v: got %.80q, want %.80q", mid, got, want)
	}
	if got := read(logOptions{tail: 1}); got != "third\n" {
		t.Errorf("tailLines 1: got %q, want \"third\\n\"", got)
	}
	if got := read(logOptions{tail: -1, limit: 8}); got != "first\nse" {
		t.Errorf("limitBytes 8: got %q, want \"first\\nse\"", got)
	}
	got := read(logOptions{tail: 1, timestamps: true})
	ts, text, _ := strings.Cut(got, " ")
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || text != "third\n" {
		t.Errorf("timestamps: got %q, want a time and \"third\\n\"", got)
	}
	// Malformed records (not the runner's) are skipped, not served.
	junk := append([]byte("garbage\n2026-01-01T00:00:00Z stdin F no\n"), raw...)
	var b bytes.Buffer
	if err := writeLogs(&b, bytes.NewReader(junk), all); err != nil || !strings.HasPrefix(b.String(), "first\n") {
		t.Errorf("with junk records: %q, %v", b.String()[:min(20, b.Len())], err)
	}
}
