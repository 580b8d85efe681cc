package spiretest

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/nodemesh/nodemesh/internal/modbuild"
)

// Binaries are the SPIRE programs built from the nested module.
type Binaries struct {
	Server, Agent string
}

// ModuleDir is the nested module that pins SPIRE, relative to the
// repository root.
const ModuleDir = "internal/spiretest/module"

// packages are the programs built, as the nested module's tool
// directives name them.
var packages = []string{
	"github.com/spiffe/spire/cmd/spire-server",
	"github.com/spiffe/spire/cmd/spire-agent",
}

// buildFlags are part of the cache key: symbols and DWARF are dropped
// (the server is 230 MB with them, 170 MB without). cgo stays on (Build
// sets it) because the server's SQLite datastore needs it.
var buildFlags = []string{"-ldflags=-s -w"}

// RepoRoot finds the repository root from the working directory (tests
// run in their package directory).
func RepoRoot() (string, error) { return modbuild.RepoRoot(ModuleDir) }

// cache is where SPIRE is built (conformance/.cache/spire-<key>): the key
// hashes the nested module's go.mod and go.sum (it has no Go files: the
// tool directives name the programs), the build flags and the Go
// toolchain (version, target, C compiler: the server links SQLite
// through cgo). The SQLite datastore is cgo: the build forces it on, or a
// CGO_ENABLED=0 environment would build a server that cannot store
// anything.
func cache(root string) modbuild.Cache {
	return modbuild.Cache{
		Root: root, Module: ModuleDir, Prefix: "spire",
		Extra: fmt.Sprintf("flags %q\n", buildFlags), GoEnv: []string{"GOVERSION", "GOOS", "GOARCH", "CC"},
		Env: []string{"CGO_ENABLED=1"},
	}
}

func binaries(dir string) *Binaries {
	return &Binaries{Server: filepath.Join(dir, "spire-server"), Agent: filepath.Join(dir, "spire-agent")}
}

// Find returns the binaries if a build for the current inputs is complete.
func Find(root string) (*Binaries, bool) {
	dir, _, ok := cache(root).Find()
	if !ok {
		return nil, false
	}
	return binaries(dir), true
}

// Build builds spire-server and spire-agent into the cache directory for
// the current inputs, unless that build is already complete, and returns
// them. Build output goes to log. Concurrent callers (parallel test
// packages) wait on a file lock and share one build.
func Build(ctx context.Context, root string, log io.Writer) (*Binaries, error) {
	c := cache(root)
	dir, _, err := c.Build(func(dir string) ([]byte, error) {
		args := append([]string{"build"}, buildFlags...)
		args = append(args, "-o", dir+string(filepath.Separator))
		if err := c.Go(ctx, log, append(args, packages...)...); err != nil {
			return nil, fmt.Errorf("building SPIRE: %w", err)
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return binaries(dir), nil
}
