package proxylib_test

import (
	"os"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/internal/golden"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestDocMatchesAllowlist keeps doc.go's allowlist section identical to the
// decoder's table; -update regenerates the section.
func TestDocMatchesAllowlist(t *testing.T) {
	const begin, end = "// BEGIN ALLOWLIST\n", "// END ALLOWLIST\n"
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatal("doc.go has no allowlist section")
	}
	var b strings.Builder
	for _, line := range resource.Allowlist() {
		b.WriteString("//   - " + line + "\n")
	}
	b.WriteString("//\n")
	want := b.String()
	got := doc[i+len(begin) : j]
	if golden.Updating() {
		if err := os.WriteFile("doc.go", []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("doc.go allowlist differs from the decoder's (run with -update):\n got:\n%s\nwant:\n%s", got, want)
	}
}
