package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sizes and offsets of bpf/lib/common.h's struct tuple (the key) and
// struct ct_entry (the value).
const (
	keySize   = 40
	valueSize = 16

	mapTypeHash    = 1 // BPF_MAP_TYPE_HASH
	mapTypeLRUHash = 9 // BPF_MAP_TYPE_LRU_HASH

	// FlagMarkIdentity is CT_F_MARK_IDENTITY: the identity was taken from
	// a routing listener's mark and is not its source address's.
	FlagMarkIdentity = 0x80
)

// The bpf(2) attributes below hold pointers as unsafe.Pointer fields, so a
// moved stack updates them; the kernel reads them as 64-bit values, which
// needs 64-bit pointers (little-endian is what the datapath builds for).
var _ [unsafe.Sizeof(uintptr(0)) - 8]byte

// ErrNotFound means the datapath holds no live entry for the connection.
var ErrNotFound = errors.New("no live connection-tracking entry")

// Entry is what the datapath recorded for a flow.
type Entry struct {
	// Identity is the source identity the datapath judged the flow with.
	Identity uint32
	// Flags are the entry's CT_F_* flags.
	Flags uint8
}

// MarkIdentity reports whether Identity came from a routing listener's
// mark and differs from the identity of the source address.
func (e Entry) MarkIdentity() bool { return e.Flags&FlagMarkIdentity != 0 }

// Map is a read-only handle on a pinned nm_ct map.
type Map struct {
	fd   int
	path string
	err  error // why the map could not be opened (fd is then -1)
}

// Open opens the pinned map at path read-only and checks its layout.
func Open(path string) (*Map, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	attr := struct {
		pathname  unsafe.Pointer
		bpfFd     uint32
		fileFlags uint32
	}{pathname: unsafe.Pointer(p), fileFlags: unix.BPF_F_RDONLY}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return nil, fmt.Errorf("opening pinned map %s: %w", path, errno)
	}
	m := &Map{fd: int(fd), path: path}
	if err := m.check(); err != nil {
		unix.Close(m.fd)
		return nil, err
	}
	return m, nil
}

// check refuses a map whose type or sizes are not nm_ct's.
func (m *Map) check() error {
	var info struct {
		typ, id, keySize, valueSize uint32
	}
	attr := struct {
		bpfFd   uint32
		infoLen uint32
		info    unsafe.Pointer
	}{bpfFd: uint32(m.fd), infoLen: uint32(unsafe.Sizeof(info)), info: unsafe.Pointer(&info)}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr)); errno != 0 {
		return fmt.Errorf("reading map info of %s: %w", m.path, errno)
	}
	if info.typ != mapTypeHash && info.typ != mapTypeLRUHash || info.keySize != keySize || info.valueSize != valueSize {
		return fmt.Errorf("map %s is not a connection-tracking map of this layout (type %d, key %d bytes, value %d bytes)",
			m.path, info.typ, info.keySize, info.valueSize)
	}
	return nil
}

// Close releases the handle.
func (m *Map) Close() error {
	if m.err != nil {
		return nil
	}
	return unix.Close(m.fd)
}

// Err says why the map could not be opened (nil when it was).
func (m *Map) Err() error { return m.err }

// Path is the pin path the map was opened from.
func (m *Map) Path() string { return m.path }

// Lookup returns the live entry of the TCP flow from src to dst (the
// accepted socket's peer and original destination).
func (m *Map) Lookup(src, dst netip.AddrPort) (Entry, error) {
	if m.err != nil {
		return Entry{}, m.err
	}
	var key [keySize]byte
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(key[0:16], s[:])
	copy(key[16:32], d[:])
	binary.NativeEndian.PutUint16(key[32:], src.Port())
	binary.NativeEndian.PutUint16(key[34:], dst.Port())
	key[36] = unix.IPPROTO_TCP
	var val [valueSize]byte
	attr := struct {
		mapFd uint32
		_     uint32
		key   unsafe.Pointer
		value unsafe.Pointer
		flags uint64
	}{mapFd: uint32(m.fd), key: unsafe.Pointer(&key), value: unsafe.Pointer(&val)}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_LOOKUP_ELEM, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	switch {
	case errno == unix.ENOENT:
		return Entry{}, ErrNotFound
	case errno != 0:
		return Entry{}, fmt.Errorf("looking up %s -> %s in %s: %w", src, dst, m.path, errno)
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &now); err != nil {
		return Entry{}, fmt.Errorf("reading the boot clock: %w", err)
	}
	if binary.NativeEndian.Uint64(val[0:8]) <= uint64(now.Nano()) {
		return Entry{}, ErrNotFound
	}
	return Entry{Identity: binary.NativeEndian.Uint32(val[8:12]), Flags: val[14]}, nil
}

var (
	sharedMu sync.Mutex
	shared   = map[string]*Map{}
)

// Shared returns the process's handle on the map pinned at path, opening
// it on first use. Handles stay open for the process's lifetime: there
// is one pinned map per node, and listeners come and go. When the map
// cannot be opened, the handle fails every lookup with the reason (and
// the next call tries again).
func Shared(path string) *Map {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if m, ok := shared[path]; ok {
		return m
	}
	m, err := Open(path)
	if err != nil {
		return &Map{fd: -1, path: path, err: err}
	}
	shared[path] = m
	return m
}
