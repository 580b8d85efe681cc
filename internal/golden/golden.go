// Package golden compares test output with checked-in files. The one
// -update flag of the project lives here: `go test ./... -update` rewrites
// every golden file and deletes outputs whose input is gone, so a stale
// .out file can never linger and pass.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files instead of comparing with them")

// Updating reports whether the test run rewrites golden files.
func Updating() bool { return *update }

// Inputs lists the files in dir ending in inSuffix, and in update mode
// deletes each file ending in outSuffix whose input is missing. It fails the
// test if there are none, so an emptied folder cannot pass silently.
func Inputs(t testing.TB, dir, inSuffix, outSuffix string) []string {
	t.Helper()
	ins, err := filepath.Glob(filepath.Join(dir, "*"+inSuffix))
	if err != nil {
		t.Fatalf("listing golden inputs: %v", err)
	}
	if len(ins) == 0 {
		t.Fatalf("no golden inputs %s*%s", dir+string(filepath.Separator), inSuffix)
	}
	if *update {
		outs, _ := filepath.Glob(filepath.Join(dir, "*"+outSuffix))
		for _, out := range outs {
			in := strings.TrimSuffix(out, outSuffix) + inSuffix
			if _, err := os.Stat(in); os.IsNotExist(err) {
				if err := os.Remove(out); err != nil {
					t.Fatalf("removing stale golden file: %v", err)
				}
			}
		}
	}
	return ins
}

// Check compares got with the file at path, or writes it in update mode.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("writing golden file: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from output (-want +got; -update rewrites it):\n%s", path, diff)
	}
}
