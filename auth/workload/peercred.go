package workload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
)

// NetNS names a network namespace by the device and inode of its nsfs
// file, as stat(2) of /proc/<pid>/ns/net or /run/netns/<name> reports them.
type NetNS struct {
	Dev uint64
	Ino uint64
}

func (n NetNS) String() string {
	return "net:[" + strconv.FormatUint(n.Dev, 10) + ":" + strconv.FormatUint(n.Ino, 10) + "]"
}

// NetNSOfPath stats a namespace file (a bind mount under /run/netns, or
// /proc/<pid>/ns/net of a process in the Pod) for the composition root's
// Attestor.
func NetNSOfPath(path string) (NetNS, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return NetNS{}, fmt.Errorf("reading network namespace %s: %w", path, err)
	}
	return NetNS{Dev: st.Dev, Ino: st.Ino}, nil
}

// ErrPeerGone is returned when the process that connected has exited
// before its namespace was read: it cannot be attested, whoever holds the
// connection now.
var ErrPeerGone = errors.New("connecting process has exited")

// pidfdGetNetNamespace is the pidfs ioctl (Linux 6.11+) that opens the
// network namespace of the process a pidfd refers to: _IO(0xFF, 4).
const pidfdGetNetNamespace = 0xFF04

// PeerInfo is what the Unix socket's peer credentials say about a caller.
// It is the grpc AuthInfo of every Workload API connection.
type PeerInfo struct {
	PID    int32 // as seen from this process's PID namespace, for logs
	UID    uint32
	GID    uint32
	NetNS  NetNS
	Method string // how the namespace was read (see doc.go)
}

// AuthType implements credentials.AuthInfo.
func (PeerInfo) AuthType() string { return "unix-peercred" }

// peerCreds attests the process at the other end of an accepted Unix
// socket connection. See doc.go for the PID-reuse argument.
type peerCreds struct{}

var _ credentials.TransportCredentials = peerCreds{}

func (peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peer credentials are server-side only")
}

func (peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	info, nsFile, err := readPeer(conn)
	if err != nil {
		return nil, nil, err
	}
	return &pinnedConn{Conn: conn, ns: nsFile}, info, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "unix-peercred"}
}
func (c peerCreds) Clone() credentials.TransportCredentials { return c }
func (peerCreds) OverrideServerName(string) error           { return nil }

// pinnedConn holds the caller's namespace file open for the connection's
// life: a namespace cannot be freed (and its inode reused by a new Pod)
// while a file refers to it, so an attested NetNS stays unambiguous.
type pinnedConn struct {
	net.Conn
	ns      *os.File
	onClose func()
	once    sync.Once
}

func (c *pinnedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.ns.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// readPeer reads the peer credentials of a Unix connection and opens the
// network namespace of the process that connected.
func readPeer(conn net.Conn) (PeerInfo, *os.File, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return PeerInfo{}, nil, fmt.Errorf("reading peer credentials: %T is not a Unix socket connection", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return PeerInfo{}, nil, fmt.Errorf("reading peer credentials: %w", err)
	}
	var (
		cred           *unix.Ucred
		pidfd          = -1
		credErr, pfErr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		pidfd, pfErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	}); err != nil {
		return PeerInfo{}, nil, fmt.Errorf("reading peer credentials: %w", err)
	}
	if credErr != nil {
		return PeerInfo{}, nil, fmt.Errorf("reading SO_PEERCRED: %w", credErr)
	}
	info := PeerInfo{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}
	if cred.Pid <= 0 {
		// The peer is in a PID namespace this process cannot see.
		return info, nil, fmt.Errorf("peer pid %d is not visible from this PID namespace", cred.Pid)
	}
	method := "so_peerpidfd"
	switch {
	case pfErr == nil:
	case errors.Is(pfErr, unix.ENOPROTOOPT):
		// Before Linux 6.5: a pidfd opened now may name a process
		// that reused the pid (doc.go: the residual race).
		method = "pidfd_open"
		pidfd, pfErr = unix.PidfdOpen(int(cred.Pid), 0)
		if pfErr != nil {
			return info, nil, fmt.Errorf("opening pidfd of peer %d: %w: %w", cred.Pid, ErrPeerGone, pfErr)
		}
	default:
		// The kernel refuses a pidfd for a process that is gone.
		return info, nil, fmt.Errorf("reading SO_PEERPIDFD of peer %d: %w: %w", cred.Pid, ErrPeerGone, pfErr)
	}
	defer unix.Close(pidfd)
	f, how, err := netnsOfPidfd(pidfd, int(cred.Pid))
	if err != nil {
		return info, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return info, nil, fmt.Errorf("reading network namespace of peer %d: %w", cred.Pid, err)
	}
	info.NetNS = NetNS{Dev: st.Dev, Ino: st.Ino}
	info.Method = method + "+" + how
	return info, f, nil
}

// netnsOfPidfd opens the network namespace of the process pidfd refers
// to. With the pidfs ioctl the kernel resolves it from the pidfd itself;
// on older kernels it falls back to netnsOfProc.
func netnsOfPidfd(pidfd, pid int) (*os.File, string, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), pidfdGetNetNamespace, 0)
	switch errno {
	case 0:
		return os.NewFile(r, "netns"), "ioctl", nil
	case unix.ESRCH:
		return nil, "", fmt.Errorf("opening network namespace of peer %d: %w", pid, ErrPeerGone)
	case unix.ENOTTY, unix.EINVAL, unix.EOPNOTSUPP:
		f, err := netnsOfProc(pidfd, pid)
		return f, "proc", err
	default:
		return nil, "", fmt.Errorf("opening network namespace of peer %d: %w", pid, errno)
	}
}

// netnsOfProc opens /proc/<pid>/ns/net and then checks, through the
// pidfd, that the process is still alive. A live process keeps its pid,
// so the file opened before the check belonged to it.
func netnsOfProc(pidfd, pid int) (*os.File, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		// A zombie has no namespaces any more: gone as well.
		return nil, fmt.Errorf("opening network namespace of peer %d: %w: %w", pid, ErrPeerGone, err)
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("checking peer %d is alive: %w: %w", pid, ErrPeerGone, err)
	}
	return f, nil
}
