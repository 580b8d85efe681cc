package modbuild

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CacheDir holds the builds of every pinned tool, relative to the
// repository root (gitignored).
const CacheDir = "conformance/.cache"

// marker is the file a build writes last into its directory: a directory
// without it is unfinished (interrupted or failed) and never used.
const marker = "complete"

// Cache is where one pinned tool is built: into
// <Root>/conformance/.cache/<Prefix>-<key>, key hashing the build's inputs
// (Key of Module, Extra and GoEnv), one directory per set of inputs.
type Cache struct {
	// Root is the repository root.
	Root string
	// Module is the nested module the tool is built from, relative to
	// Root.
	Module string
	// Prefix names the tool's build directories; no other tool's may
	// start with Prefix + "-".
	Prefix string
	// Extra and GoEnv are the inputs beyond the module's files, as Key
	// takes them.
	Extra string
	GoEnv []string
	// Env is added to the go command's environment (Go, GoOutput).
	Env []string
	// Usable, when set, also decides whether a complete build can be
	// used, from its directory and the note its marker holds: a build
	// that refers to files outside its directory (in the Go module
	// cache) may find them gone, and is then built again.
	Usable func(dir string, note []byte) bool
}

// Find returns the directory of the complete build for the current
// inputs and the note its builder left in the marker. It takes no lock: a
// build marks itself complete only when its outputs are all written.
func (c Cache) Find() (dir string, note []byte, ok bool) {
	k, err := c.key()
	if err != nil {
		return "", nil, false
	}
	return c.find(k)
}

// Build returns the complete build for the current inputs, running build
// first unless it is already there. build writes the outputs into dir
// (which exists) and returns the note to keep in the marker (nil for
// none); if it fails, the build is not marked complete and the next
// caller runs it again. Concurrent callers, in this process or others,
// wait on a file lock in the build's directory and share one build. A new
// build removes the builds of earlier inputs.
func (c Cache) Build(build func(dir string) (note []byte, err error)) (dir string, note []byte, err error) {
	k, err := c.key()
	if err != nil {
		return "", nil, err
	}
	dir = c.dir(k)
	err = Locked(dir, func() error {
		var ok bool
		if _, note, ok = c.find(k); ok {
			return nil
		}
		n, err := build(dir)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, marker), n, 0o644); err != nil {
			return fmt.Errorf("marking build complete: %w", err)
		}
		note = n
		c.prune(filepath.Base(dir))
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return dir, note, nil
}

func (c Cache) key() (string, error) {
	return Key(c.Root, c.Module, c.Extra, c.GoEnv...)
}

func (c Cache) dir(key string) string {
	return filepath.Join(c.Root, CacheDir, c.Prefix+"-"+key)
}

func (c Cache) find(key string) (string, []byte, bool) {
	dir := c.dir(key)
	note, err := os.ReadFile(filepath.Join(dir, marker))
	if err != nil {
		return "", nil, false
	}
	if c.Usable != nil && !c.Usable(dir, note) {
		return "", nil, false
	}
	return dir, note, true
}

// prune removes the tool's builds other than keep: builds of earlier
// inputs (hundreds of megabytes each) are not used again. Failures only
// leave disk space taken, so they are ignored.
func (c Cache) prune(keep string) {
	entries, err := os.ReadDir(filepath.Join(c.Root, CacheDir))
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); n != keep && strings.HasPrefix(n, c.Prefix+"-") {
			_ = os.RemoveAll(filepath.Join(c.Root, CacheDir, n))
		}
	}
}
