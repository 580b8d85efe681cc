package dirwatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ID identifies an inode (the directory watched), to tell whether the
// directory a caller read is still the one watched.
type ID struct{ Dev, Ino uint64 }

// Watch returns a channel that receives a value whenever an entry of dir
// is created, written, renamed or removed, and the identity of the
// directory watched. The value says whether the events since the last one
// include a file wanted reports true for, written whole (see written);
// otherwise events carry no detail: the caller rereads the directory
// anyway. At most one wake-up is pending; a slow reader never makes the
// watch queue more. The channel closes when the watch ends: the directory
// was removed or moved away (the path may name another directory later),
// or stop was called.
func Watch(dir string, wanted func(name string) bool) (events <-chan bool, stop func(), id ID, err error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, ID{}, fmt.Errorf("creating inotify instance: %w", err)
	}
	const mask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_MOVED_TO |
		unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ATTRIB |
		unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, nil, ID{}, fmt.Errorf("watching %s: %w", dir, err)
	}
	// The identity is taken after the watch exists: if the path changed
	// in between, the provider sees a directory other than this one on
	// its next read and watches again.
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		unix.Close(fd)
		return nil, nil, ID{}, fmt.Errorf("inspecting %s: %w", dir, err)
	}
	// A non-blocking descriptor wrapped in os.File goes through the runtime
	// poller, so Close unblocks the pending Read.
	f := os.NewFile(uintptr(fd), "inotify")
	ch := make(chan bool, 1)
	go func() {
		defer close(ch)
		buf := make([]byte, 64*1024)
		for {
			n, err := f.Read(buf)
			if err != nil || n <= 0 {
				return
			}
			if watchEnded(buf[:n]) {
				return
			}
			w := written(buf[:n], wanted)
			select {
			case ch <- w:
			case pending := <-ch:
				// One pending wake-up is enough; it keeps the news of a
				// whole write either carried.
				ch <- pending || w
			}
		}
	}()
	return ch, func() { f.Close() }, ID{Dev: st.Dev, Ino: st.Ino}, nil
}

// watchEnded reports whether a batch of inotify events says the watch no
// longer follows the path: the kernel dropped it (IN_IGNORED, after the
// directory was deleted or its file system unmounted) or the directory
// was renamed (IN_MOVE_SELF; the watch would follow it to its new name).
func watchEnded(buf []byte) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		// struct inotify_event: wd int32, mask, cookie, len uint32, name.
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		nameLen := binary.NativeEndian.Uint32(buf[off+12:])
		if mask&(unix.IN_IGNORED|unix.IN_MOVE_SELF) != 0 {
			return true
		}
		off += unix.SizeofInotifyEvent + int(nameLen)
	}
	return false
}

// written reports whether a batch of inotify events holds a wanted file
// written whole: closed after writing (IN_CLOSE_WRITE) or renamed into the
// directory (IN_MOVED_TO, how editors and kubectl-style tools replace a
// file). Writes to names wanted refuses (hidden and temporary files, for
// the callers here) do not count: such a file is not read, and is usually
// about to be renamed into place.
func written(buf []byte, wanted func(string) bool) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
		name := buf[off+unix.SizeofInotifyEvent : min(len(buf), off+unix.SizeofInotifyEvent+nameLen)]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i] // the kernel pads names with NULs
		}
		if mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO) != 0 && mask&unix.IN_ISDIR == 0 && wanted(string(name)) {
			return true
		}
		off += unix.SizeofInotifyEvent + nameLen
	}
	return false
}
