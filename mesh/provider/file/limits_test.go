package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestLoadWithoutProc runs the odd files again with the reopening through
// /proc unavailable: the fallback opens the path itself, non-blocking, and
// checks what it opened.
func TestLoadWithoutProc(t *testing.T) {
	saved := procFD
	procFD = filepath.Join(t.TempDir(), "no-proc") + "/"
	defer func() { procFD = saved }()
	testOddFiles(t)
}

// TestLoadSizeLimit: a file of exactly the limit is read, one byte more is
// not, and a file that yields more than the limit after reporting less
// (a kernel file here; a file appended to while it is read behaves the
// same) is cut off and rejected.
func TestLoadSizeLimit(t *testing.T) {
	const limit = 200
	exact := svcA + "#" + strings.Repeat("x", limit-len(svcA)-2) + "\n"
	if len(exact) != limit {
		t.Fatalf("test file is %d bytes", len(exact))
	}
	dir := t.TempDir()
	write(t, dir, "a.yaml", exact)
	p := New(dir, WithMaxFileSize(limit))
	mustLoad(t, p, "a", nil)
	write(t, dir, "a.yaml", exact+"\n")
	mustLoad(t, p, "a", map[string]string{"a.yaml": "file too large: 201 bytes, the limit is 200"})
	must(t, os.Symlink("/proc/self/status", filepath.Join(dir, "status.yaml")))
	mustLoad(t, p, "a", map[string]string{
		"a.yaml":      "file too large: 201 bytes",
		"status.yaml": "file too large: more than 200 bytes by the time it was read",
	})

	for _, path := range []string{"/proc/self/status", "/proc/self/pagemap"} {
		if _, err := readFile(path, 100); !errors.Is(err, ErrTooLarge) {
			t.Errorf("readFile(%s, 100) error = %v, want ErrTooLarge", path, err)
		}
	}
}

// TestLoadMaxFiles: over the limit the directory is an error as a whole.
func TestLoadMaxFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcA)
	write(t, dir, "b.yaml", svcB)
	write(t, dir, "README.md", "not counted")
	p := New(dir, WithMaxFiles(2))
	mustLoad(t, p, "a,b", nil)
	write(t, dir, "c.yaml", "")
	if _, err := p.Load(); !errors.Is(err, ErrTooManyFiles) {
		t.Fatalf("Load with 3 config files, limit 2: err = %v, want ErrTooManyFiles", err)
	}
}

func TestTruncateKeepsCharactersWhole(t *testing.T) {
	s := strings.Repeat("é", 10) // 2 bytes each
	for n := 1; n < len(s); n++ {
		got := truncate(s, n)
		if !utf8.ValidString(got) || !strings.HasSuffix(got, " ... (truncated)") || len(got) > n+len(" ... (truncated)") {
			t.Errorf("truncate(%d) = %q", n, got)
		}
	}
	if got := truncate(s, len(s)); got != s {
		t.Errorf("truncate at the length changed the string: %q", got)
	}
}
