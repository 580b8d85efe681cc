package file

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/mesh/dirwatch"
)

// Defaults for the limits on what the provider reads (see doc.go for why
// these values).
const (
	// DefaultMaxFileSize is the largest config file read: 4 MiB.
	DefaultMaxFileSize = 4 << 20
	// DefaultMaxFiles is how many config files the directory may hold.
	DefaultMaxFiles = 10000
)

var (
	// ErrNotRegular marks a config file name that does not resolve to a
	// regular file (a FIFO, socket, device or directory).
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge marks a config file over the size limit.
	ErrTooLarge = errors.New("file too large")
	// ErrTooManyFiles marks a directory with more config files than the
	// limit; the directory as a whole is then not read.
	ErrTooManyFiles = errors.New("too many config files")
)

// fileID identifies an inode, to tell whether the directory read is still
// the one inotify watches.
type fileID = dirwatch.ID

// procFD is where a process reopens its own descriptors; a variable so a
// test can exercise the fallback for systems without /proc.
var procFD = "/proc/self/fd/"

// readChunk is the size of each read. Fixed-size reads keep the overshoot
// past the limit bounded and suit kernel files that only accept aligned
// reads.
const readChunk = 64 << 10

// ReadFile reads one config file the way the provider does: only a
// regular file (after symbolic links) of at most limit bytes (0: the
// default, DefaultMaxFileSize). Other readers of config files, such as
// offline translation, use it so a FIFO, a device or a huge file cannot
// hang them or exhaust memory either.
func ReadFile(path string, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxFileSize
	}
	return readFile(path, limit)
}

// readFile returns the content of the config file at path, following
// symbolic links. Only a regular file of at most limit bytes is read;
// at most limit+readChunk bytes are ever read, so a file that grows while being
// read, or a kernel file whose size is not known up front, cannot make the
// read unbounded.
//
// Nothing but a regular file is ever opened for reading: the path is first
// opened with O_PATH, which has no side effects even on a FIFO or a device
// (opening a FIFO for reading would block until a writer appears; opening
// some devices changes their state), and its type and size are checked on
// that descriptor. The file is then reopened through /proc/self/fd, which
// yields the same inode however the directory changed in between, so a
// file swapped for a FIFO or a device after the check is never opened.
// Without /proc the path is opened again, non-blocking, and the type and
// size checks are repeated on the descriptor that is read.
func readFile(path string, limit int64) ([]byte, error) {
	data, _, err := readChanged(path, limit, nil)
	return data, err
}

// readChanged is readFile returning the file's stamp too. With known set,
// a file whose stamp equals it is not read: readChanged returns
// errUnchanged.
func readChanged(path string, limit int64, known *stamp) ([]byte, stamp, error) {
	if known != nil {
		// One stat says as much about an unchanged file as opening it;
		// a folder of thousands of files is checked this way on every
		// rescan.
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil && *known == stampOf(&st) {
			return nil, *known, errUnchanged
		}
	}
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, stamp{}, fmt.Errorf("opening: %w", err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, stamp{}, fmt.Errorf("inspecting: %w", err)
	}
	if known != nil && *known == stampOf(&st) {
		return nil, *known, errUnchanged
	}
	data, err := readChecked(path, pfd, &st, limit)
	return data, stampOf(&st), err
}

// errUnchanged says a file's stamp is the one it had when it was last read.
var errUnchanged = errors.New("unchanged since last read")

// stamp is what the kernel says about a file's identity and last change.
// ctime changes with every write to the file and cannot be set by a
// user, so while a file's stamp is unchanged so are its bytes — provided
// the stamp was taken after the last write's timestamp tick (see
// fileState.trusted).
type stamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func stampOf(st *unix.Stat_t) stamp {
	return stamp{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// readChecked reads the regular file pfd (an O_PATH descriptor of path
// whose stat is st) as readFile describes.
func readChecked(path string, pfd int, st *unix.Stat_t, limit int64) ([]byte, error) {
	if err := check(st, limit); err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			// Name what the symbolic links led to.
			if target, lerr := filepath.EvalSymlinks(path); lerr == nil {
				err = fmt.Errorf("%w: %s", err, target)
			}
		}
		return nil, err
	}
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	fd, err := unix.Open(procFD+strconv.Itoa(pfd), flags, 0)
	if errors.Is(err, unix.ENOENT) {
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	// The descriptor actually read is the authority.
	if err := unix.Fstat(fd, st); err != nil {
		return nil, fmt.Errorf("inspecting: %w", err)
	}
	if err := check(st, limit); err != nil {
		return nil, err
	}
	return readLimited(f, st.Size, limit)
}

// check accepts a regular file of at most limit bytes.
func check(st *unix.Stat_t, limit int64) error {
	var what string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if st.Size > limit {
			return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, st.Size, limit)
		}
		return nil
	case unix.S_IFDIR:
		what = "directory"
	case unix.S_IFIFO:
		what = "named pipe"
	case unix.S_IFSOCK:
		what = "socket"
	case unix.S_IFCHR:
		what = "character device"
	case unix.S_IFBLK:
		what = "block device"
	default:
		what = fmt.Sprintf("file type %#o", st.Mode&unix.S_IFMT)
	}
	return fmt.Errorf("%w (%s)", ErrNotRegular, what)
}

// readLimited reads r to its end, failing once more than limit bytes came.
// size is the size the file reported, used only to allocate once for an
// ordinary file.
func readLimited(r io.Reader, size, limit int64) ([]byte, error) {
	// One byte more than the size, so an ordinary file takes one
	// allocation and its end is found without growing; a file that does
	// not know its size is read in whole chunks.
	n := int64(readChunk)
	if size > 0 {
		n = min(size, limit) + 1
	}
	buf := make([]byte, 0, n)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, readChunk)
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), len(buf)+readChunk)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("%w: more than %d bytes by the time it was read", ErrTooLarge, limit)
		}
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, fmt.Errorf("reading: %w", err)
		}
	}
}

// dirEntry is a config file name in the directory.
type dirEntry struct {
	name string
	// link is set for a symbolic link: inotify on the directory does not
	// see changes to what it points to.
	link bool
}

// listDir returns the config files in dir, in directory order, and the
// directory's identity. More than maxFiles config files is an error
// (wrapping ErrTooManyFiles): entries are read in batches, so memory stays
// bounded whatever else the directory holds.
func listDir(dir string, maxFiles int) ([]dirEntry, fileID, error) {
	// O_DIRECTORY fails on anything else before it is opened, so a FIFO
	// in place of the directory cannot block the open.
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fileID{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileID{}, fmt.Errorf("inspecting %s: %w", dir, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	id := fileID{Dev: st.Dev, Ino: st.Ino}
	var out []dirEntry
	for {
		batch, err := f.ReadDir(256)
		for _, e := range batch {
			if !wanted(e.Name()) {
				continue
			}
			if len(out) == maxFiles {
				return nil, id, fmt.Errorf("%w: %s holds more than %d", ErrTooManyFiles, dir, maxFiles)
			}
			out = append(out, dirEntry{name: e.Name(), link: e.Type()&os.ModeSymlink != 0})
		}
		switch {
		case err == io.EOF:
			return out, id, nil
		case err != nil:
			return nil, id, fmt.Errorf("listing %s: %w", dir, err)
		}
	}
}

// dirIdentity is the identity of the directory path names now.
func dirIdentity(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{Dev: st.Dev, Ino: st.Ino}, nil
}

// isLink reports whether path is a symbolic link; false when it does not
// exist (or cannot be inspected: reading it then says why).
func isLink(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}
