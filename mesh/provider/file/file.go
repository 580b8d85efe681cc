package file

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// Result is one view of the directory.
type Result struct {
	// Snapshot is built from every file's last good objects; never nil.
	Snapshot *input.Snapshot
	// Errors lists current problems, one per bad file (or collision),
	// sorted; empty when every file is good.
	Errors []string
}

// Provider watches one directory. Create it with New; Load and Watch must
// not be called concurrently.
type Provider struct {
	dir      string
	log      *slog.Logger
	rescan   time.Duration
	debounce time.Duration

	files   map[string]*fileState
	dirty   bool // a file changed since the last build
	lastRes *Result
	// lastGood is the last snapshot that built without error.
	lastGood *input.Snapshot
}

type fileState struct {
	sum  [sha256.Size]byte
	objs []input.Object // last good decode
	err  error          // current decode error, if the latest content is bad
}

// Option configures a Provider.
type Option func(*Provider)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(p *Provider) { p.log = l } }

// WithRescanInterval sets how often the directory is re-read even without
// inotify events (default 2s; 0 disables).
func WithRescanInterval(d time.Duration) Option { return func(p *Provider) { p.rescan = d } }

// New returns a provider for dir. It does not touch the file system.
func New(dir string, opts ...Option) *Provider {
	p := &Provider{
		dir:      dir,
		log:      slog.Default(),
		rescan:   2 * time.Second,
		debounce: 50 * time.Millisecond,
		files:    map[string]*fileState{},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Load reads the directory once and returns the current view. An error is
// returned only when the directory itself cannot be read; problems with
// individual files are in Result.Errors.
func (p *Provider) Load() (*Result, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("reading config directory: %w", err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !wanted(name) {
			continue
		}
		path := filepath.Join(p.dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed between ReadDir and ReadFile
			}
			p.fileState(name).err = fmt.Errorf("%s: reading: %w", name, err)
			seen[name] = true
			p.dirty = true
			continue
		}
		seen[name] = true
		st := p.fileState(name)
		sum := sha256.Sum256(data)
		if sum == st.sum && st.objs != nil {
			continue
		}
		st.sum = sum
		p.dirty = true
		objs, err := input.Decode(name, data)
		if err != nil {
			st.err = err
			continue
		}
		st.objs, st.err = objs, nil
	}
	for name := range p.files {
		if !seen[name] {
			delete(p.files, name)
			p.dirty = true
		}
	}
	if p.dirty || p.lastRes == nil {
		p.lastRes = p.build()
		p.dirty = false
	}
	return p.lastRes, nil
}

func (p *Provider) fileState(name string) *fileState {
	st := p.files[name]
	if st == nil {
		st = &fileState{}
		p.files[name] = st
	}
	return st
}

func (p *Provider) build() *Result {
	names := make([]string, 0, len(p.files))
	for n := range p.files {
		names = append(names, n)
	}
	sort.Strings(names)
	var all []input.Object
	var errs []string
	for _, n := range names {
		st := p.files[n]
		all = append(all, st.objs...)
		if st.err != nil {
			errs = append(errs, st.err.Error())
		}
	}
	snap, err := input.Build(all)
	switch {
	case err == nil:
		p.lastGood = snap
	case p.lastGood != nil:
		errs = append(errs, err.Error())
		snap = p.lastGood
	default:
		errs = append(errs, err.Error())
		snap = &input.Snapshot{}
	}
	return &Result{Snapshot: snap, Errors: errs}
}

// Watch publishes the directory's view now and after every change until
// ctx ends. fn runs on Watch's goroutine; it is not called again until it
// returns, and it is not called when nothing changed.
func (p *Provider) Watch(ctx context.Context, fn func(*Result)) error {
	events, closeWatch, err := watchDir(p.dir)
	if err != nil {
		p.log.Warn("watching config directory with inotify; falling back to rescans", "dir", p.dir, "err", err)
		events = nil
	} else {
		defer closeWatch()
	}
	var tick <-chan time.Time
	if p.rescan > 0 {
		t := time.NewTicker(p.rescan)
		defer t.Stop()
		tick = t.C
	}
	var last *Result
	publish := func() error {
		res, err := p.Load()
		if err != nil {
			return err
		}
		if last != nil && sameResult(last, res) {
			return nil
		}
		last = res
		for _, e := range res.Errors {
			p.log.Warn("config file rejected; keeping its last good version", "err", e)
		}
		fn(res)
		return nil
	}
	if err := publish(); err != nil {
		return err
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if debounce == nil {
				debounce = time.After(p.debounce)
			}
		case <-debounce:
			debounce = nil
			if err := publish(); err != nil {
				p.log.Error("reloading config directory", "err", err)
			}
		case <-tick:
			if err := publish(); err != nil {
				p.log.Error("rescanning config directory", "err", err)
			}
		}
	}
}

func sameResult(a, b *Result) bool {
	return reflect.DeepEqual(a.Errors, b.Errors) &&
		(a.Snapshot == b.Snapshot || reflect.DeepEqual(a.Snapshot, b.Snapshot))
}

// wanted reports whether a directory entry is a config file.
func wanted(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}
