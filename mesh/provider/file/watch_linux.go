package file

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// watchDir returns a channel that receives a value whenever an entry of dir
// is created, written, renamed or removed. Events carry no detail: the
// provider rereads the directory anyway. The channel closes if the watch
// breaks (for example, the directory is removed) or when stop is called.
func watchDir(dir string) (events <-chan struct{}, stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, fmt.Errorf("creating inotify instance: %w", err)
	}
	const mask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_MOVED_TO |
		unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ATTRIB
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("watching %s: %w", dir, err)
	}
	// A non-blocking descriptor wrapped in os.File goes through the runtime
	// poller, so Close unblocks the pending Read.
	f := os.NewFile(uintptr(fd), "inotify")
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		buf := make([]byte, 64*1024)
		for {
			if n, err := f.Read(buf); err != nil || n <= 0 {
				return
			}
			select {
			case ch <- struct{}{}:
			default: // one pending wake-up is enough
			}
		}
	}()
	return ch, func() { f.Close() }, nil
}
