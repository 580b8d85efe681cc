package modbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// RepoRoot finds the repository root from the working directory (tests
// run in their package directory): the nearest directory above it that
// holds moduleDir/go.mod.
func RepoRoot(moduleDir string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, moduleDir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding repository root: no " + moduleDir + "/go.mod above the working directory")
		}
		dir = parent
	}
}

// Key hashes every input of a build: the nested module's go.mod, go.sum
// and Go files, extra (e.g. the build flags), and `go env` of goEnv (at
// least GOVERSION). A change to any of them gives a new key, so the build
// goes into a fresh directory.
func Key(root, moduleDir, extra string, goEnv ...string) (string, error) {
	h := sha256.New()
	mod := filepath.Join(root, moduleDir)
	var files []string
	err := filepath.WalkDir(mod, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if n := d.Name(); n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing build inputs: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("hashing build inputs: %w", err)
		}
		rel, _ := filepath.Rel(mod, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	h.Write([]byte(extra))
	out, err := exec.Command("go", append([]string{"env"}, goEnv...)...).Output()
	if err != nil {
		return "", fmt.Errorf("reading Go environment: %w", err)
	}
	h.Write(out)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Locked creates dir and runs fn holding an exclusive lock on dir/.lock,
// so concurrent builders (parallel test packages) wait and share one
// build.
func Locked(dir string, fn func() error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating build cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("opening build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("taking build lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	return fn()
}
