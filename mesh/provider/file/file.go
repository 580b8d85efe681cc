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
	"unicode/utf8"

	"github.com/nodemesh/nodemesh/mesh/dirwatch"
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
	dir         string
	log         *slog.Logger
	rescan      time.Duration
	debounce    time.Duration
	settle      time.Duration
	maxFileSize int64
	maxFiles    int

	files   map[string]*fileState
	dirID   fileID // the directory the last Load read
	dirty   bool   // a file changed since the last build
	lastRes *Result
	// lastGood is the last snapshot that built without error.
	lastGood *input.Snapshot
}

type fileState struct {
	// read is true when the latest attempt read the file; sum is then
	// the hash of what it read.
	read bool
	sum  [sha256.Size]byte
	objs []input.Object // last good decode
	err  error          // why the latest content is not in use, if it is not
	// docs holds the last good decode by document, so a new version
	// decodes only the documents that changed.
	docs input.Cache
	// stamp is the file's stamp when it was last read; when trusted, a
	// file with the same stamp is not read again (see loadFile).
	stamp   stamp
	trusted bool
	// link is set when the name is a symbolic link: a change to its
	// target makes no event in this directory, so every read after
	// events checks it (see loadNamed).
	link bool
}

// trusted reports whether a stamp taken by a read at readAt stands for
// the bytes read. A write in the same timestamp tick as the read would
// leave the stamp as it was, so the file's last change must be older than
// the read by more than stampSlack.
func trusted(readAt time.Time, st stamp) bool {
	return readAt.Sub(time.Unix(st.ctime.Unix())) > stampSlack
}

// stampSlack is how much older than a read a file's last change must be
// for its stamp to stand for its content: coarser than the timestamp
// granularity of any file system a config folder lives on (Linux ticks,
// FAT's two seconds). Until then the file is read (and hashed) on every
// load, which costs the files being edited, not the folder.
const stampSlack = 3 * time.Second

// Option configures a Provider.
type Option func(*Provider)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(p *Provider) { p.log = l } }

// WithRescanInterval sets how often the directory is re-read even without
// inotify events (default 2s; 0 disables).
func WithRescanInterval(d time.Duration) Option { return func(p *Provider) { p.rescan = d } }

// WithDebounce sets how long after a change the directory is read
// (default 50ms), and how long after a config file was written whole —
// closed after writing, or renamed into the directory — (default 5ms,
// never more than the debounce). See "When the folder is read" in doc.go.
func WithDebounce(debounce, settle time.Duration) Option {
	return func(p *Provider) { p.debounce, p.settle = debounce, settle }
}

// WithMaxFileSize sets the size of the largest config file read (default
// DefaultMaxFileSize; n <= 0 keeps the default). A larger file is skipped
// and reported, and its last good version stays in effect.
func WithMaxFileSize(n int64) Option {
	return func(p *Provider) {
		if n > 0 {
			p.maxFileSize = n
		}
	}
}

// WithMaxFiles sets how many config files the directory may hold (default
// DefaultMaxFiles; n <= 0 keeps the default). With more, the directory is
// not read and the last good configuration stays in effect.
func WithMaxFiles(n int) Option {
	return func(p *Provider) {
		if n > 0 {
			p.maxFiles = n
		}
	}
}

// New returns a provider for dir. It does not touch the file system.
func New(dir string, opts ...Option) *Provider {
	p := &Provider{
		dir:         dir,
		log:         slog.Default(),
		rescan:      2 * time.Second,
		debounce:    50 * time.Millisecond,
		settle:      5 * time.Millisecond,
		maxFileSize: DefaultMaxFileSize,
		maxFiles:    DefaultMaxFiles,
		files:       map[string]*fileState{},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Load reads the directory once and returns the current view. An error is
// returned only when the directory itself cannot be read (or holds more
// config files than the limit); the provider's state is then unchanged.
// Problems with individual files are in Result.Errors.
func (p *Provider) Load() (*Result, error) {
	entries, id, err := listDir(p.dir, p.maxFiles)
	if err != nil {
		return nil, fmt.Errorf("reading config directory: %w", err)
	}
	p.dirID = id
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if p.loadFile(e.name, e.link) {
			seen[e.name] = true
		}
	}
	for name := range p.files {
		if !seen[name] {
			delete(p.files, name)
			p.dirty = true
		}
	}
	return p.result(), nil
}

// loadNamed is Load after inotify events that named the config files in
// named: only those files are looked at (read if their stamps say they
// may have changed, forgotten if they are gone), and the ones that are
// symbolic links, whose targets change without an event here. Every other
// file is as it was when last read: the watch existed before that read
// and no event has named it since. Changes inotify does not report — a
// file written through a hard link in another directory or a shared
// mapping, a network file system changed elsewhere — are found by the
// rescan, which calls Load.
//
// When the directory path names another directory than the one last
// read, or the named files would take the folder over its file limit,
// the whole directory is read (Load).
func (p *Provider) loadNamed(named map[string]bool) (*Result, error) {
	if p.lastRes == nil || len(p.files)+len(named) > p.maxFiles {
		return p.Load()
	}
	if id, err := dirIdentity(p.dir); err != nil || id != p.dirID {
		return p.Load()
	}
	for name := range named {
		if !p.loadFile(name, isLink(filepath.Join(p.dir, name))) {
			p.forget(name)
		}
	}
	for name, st := range p.files {
		if st.link && !named[name] && !p.loadFile(name, true) {
			p.forget(name)
		}
	}
	return p.result(), nil
}

// forget drops a file that no longer exists.
func (p *Provider) forget(name string) {
	if _, ok := p.files[name]; ok {
		delete(p.files, name)
		p.dirty = true
	}
}

// result is the current view, built again if a file changed.
func (p *Provider) result() *Result {
	if p.dirty || p.lastRes == nil {
		p.lastRes = p.build()
		p.dirty = false
	}
	return p.lastRes
}

// loadFile rereads one config file and decodes it if its content changed;
// link says whether the name is a symbolic link. It returns false when the
// file no longer exists.
func (p *Provider) loadFile(name string, link bool) bool {
	if examining != nil {
		examining(name)
	}
	path := filepath.Join(p.dir, name)
	st := p.files[name]
	if st != nil {
		st.link = link
	}
	var known *stamp
	if st != nil && st.read && st.trusted {
		known = &st.stamp
	}
	readAt := time.Now()
	data, stamp, err := readChanged(path, p.maxFileSize, known)
	if errors.Is(err, errUnchanged) {
		return true
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			fi, lerr := os.Lstat(path)
			if errors.Is(lerr, os.ErrNotExist) {
				return false // removed since the directory was listed
			}
			if lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
				target, _ := os.Readlink(path)
				err = fmt.Errorf("symbolic link to a missing file: %s", target)
			}
		}
		p.reject(name, fmt.Errorf("%s: skipped: %w", name, err), link)
		return true
	}
	st = p.fileState(name)
	st.link = link
	sum := sha256.Sum256(data)
	st.stamp, st.trusted = stamp, trusted(readAt, stamp)
	if st.read && sum == st.sum {
		return true
	}
	st.read, st.sum = true, sum
	p.dirty = true
	objs, err := st.docs.Decode(name, data)
	if err != nil {
		st.err = err
		return true
	}
	st.objs, st.err = objs, nil
	return true
}

// examining, set only by tests, sees every config file the provider looks
// at (its stamp checked, or read).
var examining func(name string)

// reject records that name could not be read; its last good objects stay.
func (p *Provider) reject(name string, err error, link bool) {
	st := p.fileState(name)
	st.link = link
	if st.read || st.err == nil || st.err.Error() != err.Error() {
		p.dirty = true
	}
	// Forget the hash: when the file is readable again its content is
	// decoded even if it is what it was before, which clears the error.
	st.read, st.err = false, err
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
			errs = append(errs, describe(st.err))
		}
	}
	snap, err := input.Build(all)
	switch {
	case err == nil:
		p.lastGood = snap
	case p.lastGood != nil:
		errs = append(errs, describe(err))
		snap = p.lastGood
	default:
		errs = append(errs, describe(err))
		snap = &input.Snapshot{}
	}
	return &Result{Snapshot: snap, Errors: errs}
}

// Watch publishes the directory's view now and after every change until
// ctx ends. fn runs on Watch's goroutine; it is not called again until it
// returns, and it is not called when nothing changed.
//
// Watch returns an error only when the directory cannot be read at the
// start. Once something was published, a directory that cannot be read
// (removed, replaced by a file, over the file limit) is published as a
// Result whose Snapshot is the one in effect and whose only error says
// why; Watch keeps retrying on every rescan and recovers when the
// directory is back.
func (p *Provider) Watch(ctx context.Context, fn func(*Result)) error {
	var (
		watch *dirwatch.Watch
		wake  <-chan struct{}
	)
	unwatch := func() {
		if watch != nil {
			watch.Stop()
		}
		watch, wake = nil, nil
	}
	defer unwatch()
	// rewatch (re)establishes the inotify watch on the directory the path
	// names now; rescans cover the time without one.
	rewatch := func(first bool) {
		unwatch()
		w, err := dirwatch.Start(p.dir, wanted)
		if err != nil {
			if first {
				p.log.Warn("watching config directory with inotify; falling back to rescans", "dir", p.dir, "err", err)
			}
			return
		}
		watch, wake = w, w.Wake
	}
	rewatch(true)

	var tick <-chan time.Time
	if p.rescan > 0 {
		t := time.NewTicker(p.rescan)
		defer t.Stop()
		tick = t.C
	}
	// debounce fires when the directory is read after events; due is
	// when (zero while none is pending). pending is what the events
	// gathered so far say.
	var debounce <-chan time.Time
	var due time.Time
	var pending dirwatch.Batch
	readIn := func(d time.Duration) {
		if at := time.Now().Add(d); due.IsZero() || at.Before(due) {
			due, debounce = at, time.After(d)
		}
	}
	var last *Result
	// publish reads the directory: only the files named in b when the
	// watch has been in place since the last read (b is what it reported
	// since), every file otherwise.
	publish := func(b dirwatch.Batch) error {
		narrow := watch != nil && last != nil && !b.All
		if watch == nil {
			rewatch(false)
		}
		var res *Result
		var err error
		if narrow {
			res, err = p.loadNamed(b.Named)
		} else {
			res, err = p.Load()
		}
		if err != nil {
			if last == nil {
				return err
			}
			// Keep what is in effect; say why nothing else is. What the
			// events named was not read: the next read covers every file.
			pending.All = true
			res = &Result{Snapshot: last.Snapshot, Errors: []string{err.Error()}}
		} else if watch != nil && p.dirID != watch.ID {
			// The path names another directory now (it was replaced, or
			// a symbolic link to it changed): watch that one, and read
			// again for what changed before the new watch existed.
			rewatch(false)
			pending.All = true
			readIn(p.debounce)
		}
		if last != nil && sameResult(last, res) {
			return nil
		}
		last = res
		for _, e := range res.Errors {
			p.log.Warn("config rejected; keeping the last good version", "err", e)
		}
		fn(res)
		return nil
	}
	if err := publish(dirwatch.Batch{All: true}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-wake:
			if !ok {
				// The watched directory was removed or moved away: what
				// it reported last still counts, and the next read
				// covers every file.
				pending.Merge(watch.Take())
				pending.All = true
				unwatch()
				readIn(p.debounce)
				continue
			}
			b := watch.Take()
			pending.Merge(b)
			// A file written whole is read after a short settle, which
			// gathers the rest of a burst of renames; anything else
			// (a write in progress, a removal) waits for the debounce.
			if b.Whole {
				readIn(min(p.settle, p.debounce))
			} else {
				readIn(p.debounce)
			}
		case <-debounce:
			debounce, due = nil, time.Time{}
			b := pending
			pending = dirwatch.Batch{}
			_ = publish(b)
		case <-tick:
			// Everything gathered so far is covered by a whole read.
			pending = dirwatch.Batch{}
			_ = publish(dirwatch.Batch{All: true})
		}
	}
}

func sameResult(a, b *Result) bool {
	return reflect.DeepEqual(a.Errors, b.Errors) &&
		input.SameContent(a.Snapshot, b.Snapshot)
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

// Bounds on the text of one file's error, so a file with thousands of bad
// documents (or one very long line quoted in an error) cannot bloat the
// status and the log.
const (
	maxProblems     = 10
	maxProblemBytes = 512
)

// describe renders err (one error, or several joined) for Result.Errors:
// at most maxProblems problems of at most maxProblemBytes each.
func describe(err error) string {
	problems := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		problems = j.Unwrap()
	}
	var b strings.Builder
	for i, e := range problems {
		if i == maxProblems {
			fmt.Fprintf(&b, "\n(and %d more problems)", len(problems)-i)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(truncate(e.Error(), maxProblemBytes))
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Do not cut a multi-byte character in two.
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n] + " ... (truncated)"
}
