package modbuild

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKeyFollowsEveryInput: the key changes with go.mod, with a Go file
// anywhere in the module, and with the extra inputs; it is stable
// otherwise, and files that are not build inputs do not count.
func TestKeyFollowsEveryInput(t *testing.T) {
	root := t.TempDir()
	mod := filepath.Join(root, "tools", "m")
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func(extra string) string {
		t.Helper()
		k, err := Key(root, "tools/m", extra, "GOVERSION")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write("go.mod", "module m\n")
	write("go.sum", "")
	k0 := key("")
	if key("") != k0 {
		t.Fatal("the key is not stable")
	}
	write("README", "not an input")
	if key("") != k0 {
		t.Fatal("a non-Go file changed the key")
	}
	write("cmd/x/main.go", "package main\n")
	k1 := key("")
	if k1 == k0 {
		t.Fatal("a Go file in a subfolder did not change the key")
	}
	write("go.mod", "module m\n\ngo 1.26\n")
	if key("") == k1 {
		t.Fatal("go.mod did not change the key")
	}
	if key("flags") == key("") {
		t.Fatal("the extra inputs did not change the key")
	}
	t.Chdir(filepath.Join(mod, "cmd"))
	if got, err := RepoRoot("tools/m"); err != nil || got != root {
		t.Fatalf("RepoRoot from inside the module: %q, %v", got, err)
	}
}
