package dirwatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// MaxNamed bounds how many file names a batch of events collects before it
// stops naming them and asks for every file to be checked: past that,
// checking the whole directory is as cheap, and the memory a writer
// touching many files can make the watch hold stays bounded.
const MaxNamed = 1024

// ID identifies an inode (the directory watched), to tell whether the
// directory a caller read is still the one watched.
type ID struct{ Dev, Ino uint64 }

// Batch is what the inotify events since the last Take say.
type Batch struct {
	// Whole is set when a wanted file was written whole: closed after
	// writing (IN_CLOSE_WRITE) or renamed into the directory (IN_MOVED_TO,
	// how editors and kubectl-style tools replace a file).
	Whole bool
	// All is set when the events do not tell which files changed: the
	// kernel's queue overflowed (events were lost), an event concerned
	// the directory itself, or more than MaxNamed names came.
	All bool
	// Named holds every wanted name an event concerned (created, written,
	// closed after writing, renamed to or from, removed, its attributes
	// changed), unless All is set.
	Named map[string]bool
}

// add records one event.
func (b *Batch) add(mask uint32, name string, wanted func(string) bool) {
	if mask&unix.IN_Q_OVERFLOW != 0 || name == "" {
		b.All, b.Named = true, nil
	}
	if !wanted(name) {
		// Names the caller never reads (hidden and temporary files, for
		// the callers here) do not count: such a file is usually about
		// to be renamed into place.
		return
	}
	if mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO) != 0 && mask&unix.IN_ISDIR == 0 {
		b.Whole = true
	}
	b.name(name)
}

func (b *Batch) name(n string) {
	if b.All {
		b.Named = nil
		return
	}
	if b.Named == nil {
		b.Named = map[string]bool{}
	}
	b.Named[n] = true
	if len(b.Named) > MaxNamed {
		b.All, b.Named = true, nil
	}
}

// Merge adds what o says.
func (b *Batch) Merge(o Batch) {
	b.Whole = b.Whole || o.Whole
	b.All = b.All || o.All
	for n := range o.Named {
		b.name(n)
	}
	if b.All {
		b.Named = nil
	}
}

// Watch is an inotify watch on one directory.
type Watch struct {
	// Wake receives a value when events came since the last Take; it is
	// closed when the watch ends: the directory was removed or moved away
	// (the path may name another directory later), or Stop was called. At
	// most one wake-up is pending, so a slow reader never makes the watch
	// queue more.
	Wake <-chan struct{}
	// ID is the identity of the directory watched.
	ID ID
	f  *os.File

	mu      sync.Mutex
	pending Batch
}

// Take returns what the events since the last Take said.
func (w *Watch) Take() Batch {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.pending
	w.pending = Batch{}
	return b
}

// Stop ends the watch.
func (w *Watch) Stop() { w.f.Close() }

// Start watches dir for entries created, written, renamed, removed or
// changed in their attributes; wanted says which entry names the caller
// reads (the others are left out of batches).
func Start(dir string, wanted func(name string) bool) (*Watch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("creating inotify instance: %w", err)
	}
	const mask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_MOVED_TO |
		unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ATTRIB |
		unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watching %s: %w", dir, err)
	}
	// The identity is taken after the watch exists: if the path changed
	// in between, the caller sees a directory other than this one on its
	// next read and watches again.
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inspecting %s: %w", dir, err)
	}
	// A non-blocking descriptor wrapped in os.File goes through the runtime
	// poller, so Close unblocks the pending Read.
	wake := make(chan struct{}, 1)
	w := &Watch{Wake: wake, ID: ID{Dev: st.Dev, Ino: st.Ino}, f: os.NewFile(uintptr(fd), "inotify")}
	go func() {
		defer close(wake)
		buf := make([]byte, 64*1024)
		for {
			n, err := w.f.Read(buf)
			if err != nil || n <= 0 {
				return
			}
			var b Batch
			if parseEvents(buf[:n], &b, wanted) {
				return
			}
			w.mu.Lock()
			w.pending.Merge(b)
			w.mu.Unlock()
			select {
			case wake <- struct{}{}:
			default: // one pending wake-up is enough
			}
		}
	}()
	return w, nil
}

// parseEvents adds a buffer of inotify events to b, and reports whether
// they say the watch no longer follows the path: the kernel dropped it
// (IN_IGNORED, after the directory was deleted or its file system
// unmounted) or the directory was renamed (IN_MOVE_SELF; the watch would
// follow it to its new name).
func parseEvents(buf []byte, b *Batch, wanted func(string) bool) (ended bool) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		// struct inotify_event: wd int32, mask, cookie, len uint32, name.
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
		if mask&(unix.IN_IGNORED|unix.IN_MOVE_SELF) != 0 {
			return true
		}
		name := buf[off+unix.SizeofInotifyEvent : min(len(buf), off+unix.SizeofInotifyEvent+nameLen)]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i] // the kernel pads names with NULs
		}
		b.add(mask, string(name), wanted)
		off += unix.SizeofInotifyEvent + nameLen
	}
	return false
}
