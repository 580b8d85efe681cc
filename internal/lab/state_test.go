package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDownRefusesForeignDirectory: Down removes the state directory, so a
// directory holding anything a lab does not write is refused and kept.
func TestDownRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	precious := filepath.Join(dir, "thesis.tex")
	if err := os.WriteFile(precious, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Down(dir, time.Second); err == nil || !strings.Contains(err.Error(), "thesis.tex") {
		t.Fatalf("Down of a foreign directory: %v", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Fatalf("Down removed a file it does not own: %v", err)
	}
	labDir := filepath.Join(dir, "lab")
	for _, d := range []string{"cluster/logs", "nodes/node-1", "pods"} {
		if err := os.MkdirAll(filepath.Join(labDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(labDir, "lab.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(labDir); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(filepath.Join(dir, "missing")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(labDir); err == nil || !strings.Contains(err.Error(), "no lab is running") {
		t.Fatalf("LoadState without a lab: %v", err)
	}
}

func TestManifestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.yaml", "a.yml", "c.json", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := ManifestFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, filepath.Base(g))
	}
	if strings.Join(names, ",") != "a.yml,b.yaml,c.json" {
		t.Fatalf("files %v", names)
	}
	if _, err := ManifestFiles(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if _, err := ManifestFiles(empty); err == nil {
		t.Fatal("an empty directory gave no error")
	}
}
