package file

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// maxNamed bounds how many config file names a batch of events collects
// before it stops naming them and asks for every file to be checked: past
// that, checking the whole folder is as cheap, and the memory a writer
// touching many files can make the watch hold stays bounded.
const maxNamed = 1024

// batch is what the inotify events since the provider last took them
// say.
type batch struct {
	// whole is set when a config file was written whole: closed after
	// writing (IN_CLOSE_WRITE) or renamed into the directory (IN_MOVED_TO,
	// how editors and kubectl-style tools replace a file).
	whole bool
	// all is set when the events do not tell which config files changed:
	// the kernel's queue overflowed (events were lost), an event concerned
	// the directory itself, or more than maxNamed names came.
	all bool
	// named holds every config file name an event concerned (created,
	// written, closed after writing, renamed to or from, removed, its
	// attributes changed), unless all is set.
	named map[string]bool
}

// add records one event.
func (b *batch) add(mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 || name == "" {
		b.all, b.named = true, nil
	}
	if !wanted(name) {
		// Hidden and temporary names are never read (a config file that
		// is a symbolic link to one is checked on every read anyway).
		return
	}
	if mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO) != 0 && mask&unix.IN_ISDIR == 0 {
		b.whole = true
	}
	b.name(name)
}

func (b *batch) name(n string) {
	if b.all {
		b.named = nil
		return
	}
	if b.named == nil {
		b.named = map[string]bool{}
	}
	b.named[n] = true
	if len(b.named) > maxNamed {
		b.all, b.named = true, nil
	}
}

// merge adds what o says.
func (b *batch) merge(o batch) {
	b.whole = b.whole || o.whole
	b.all = b.all || o.all
	for n := range o.named {
		b.name(n)
	}
	if b.all {
		b.named = nil
	}
}

// dirWatch is an inotify watch on one directory.
type dirWatch struct {
	// wake receives a value when events came since the last take; it is
	// closed when the watch ends: the directory was removed or moved away
	// (the path may name another directory later), or stop was called.
	wake <-chan struct{}
	// id is the identity of the directory watched.
	id fileID
	f  *os.File

	mu      sync.Mutex
	pending batch
}

// take returns what the events since the last take said.
func (w *dirWatch) take() batch {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.pending
	w.pending = batch{}
	return b
}

// stop ends the watch.
func (w *dirWatch) stop() { w.f.Close() }

// watchDir starts an inotify watch on dir for entries created, written,
// renamed, removed or changed in their attributes.
func watchDir(dir string) (*dirWatch, error) {
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
	// in between, the provider sees a directory other than this one on
	// its next read and watches again.
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inspecting %s: %w", dir, err)
	}
	// A non-blocking descriptor wrapped in os.File goes through the runtime
	// poller, so Close unblocks the pending Read.
	wake := make(chan struct{}, 1)
	w := &dirWatch{wake: wake, id: fileID{dev: st.Dev, ino: st.Ino}, f: os.NewFile(uintptr(fd), "inotify")}
	go func() {
		defer close(wake)
		buf := make([]byte, 64*1024)
		for {
			n, err := w.f.Read(buf)
			if err != nil || n <= 0 {
				return
			}
			var b batch
			if parseEvents(buf[:n], &b) {
				return
			}
			w.mu.Lock()
			w.pending.merge(b)
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
func parseEvents(buf []byte, b *batch) (ended bool) {
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
		b.add(mask, string(name))
		off += unix.SizeofInotifyEvent + nameLen
	}
	return false
}
