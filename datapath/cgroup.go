package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/datapath/cgroup2"
)

// Socket-level Service translation runs at the socket hooks of one cgroup
// (v2): the cgroup holding the node's Pods (kubelet's kubepods, the lab's
// per-node Pod cgroup). Each hook is a bpf link pinned under
// <pin dir>/cgroup/<hook>, so it outlives the agent and a restart swaps in
// the new program with link.Update, like the interface links.

type cgroupHook struct {
	name   string
	attach ebpf.AttachType
	prog   func(*objects) *ebpf.Program
}

var cgroupHooks = []cgroupHook{
	{"connect4", ebpf.AttachCGroupInet4Connect, func(o *objects) *ebpf.Program { return o.sock.SockConnect4 }},
	{"sendmsg4", ebpf.AttachCGroupUDP4Sendmsg, func(o *objects) *ebpf.Program { return o.sock.SockSendmsg4 }},
	{"recvmsg4", ebpf.AttachCGroupUDP4Recvmsg, func(o *objects) *ebpf.Program { return o.sock.SockRecvmsg4 }},
	{"getpeername4", ebpf.AttachCgroupInet4GetPeername, func(o *objects) *ebpf.Program { return o.sock.SockGetpeername4 }},
	{"connect6", ebpf.AttachCGroupInet6Connect, func(o *objects) *ebpf.Program { return o.sock.SockConnect6 }},
	{"sendmsg6", ebpf.AttachCGroupUDP6Sendmsg, func(o *objects) *ebpf.Program { return o.sock.SockSendmsg6 }},
	{"recvmsg6", ebpf.AttachCGroupUDP6Recvmsg, func(o *objects) *ebpf.Program { return o.sock.SockRecvmsg6 }},
	{"getpeername6", ebpf.AttachCgroupInet6GetPeername, func(o *objects) *ebpf.Program { return o.sock.SockGetpeername6 }},
}

func (d *Datapath) cgroupPin(h cgroupHook) string {
	return filepath.Join(d.opts.pinDir, "cgroup", h.name)
}

// cgroupID is the id the kernel reports for the cgroup v2 directory path
// (its inode number).
func cgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("reading cgroup %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("reading cgroup %s: %w", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("%s is not on a cgroup v2 filesystem", path)
	}
	return st.Ino, nil
}

// AttachCgroup attaches socket-level Service translation to the cgroup v2
// directory path, for every process in it and below (SyncServices fills
// the table it reads). Never give it a cgroup holding more than the
// node's Pods: every connect in it is subject to translation. Attaching
// to another cgroup moves the hooks there; a second call with the same
// cgroup only makes sure the current programs are attached.
//
// The hooks are attached one by one, so an error can leave some attached
// (or, when moving, some on the old cgroup and some on the new). The agent
// treats the error as fatal, and a later call converges, because each hook
// is checked on its own. A half-attached state fails closed where it
// matters: under egress enforcement from_workload drops every new flow
// still addressed into the Service ranges, so a hook that is missing
// (sendmsg4, say) refuses that traffic instead of passing it unjudged.
func (d *Datapath) AttachCgroup(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, err := cgroupID(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(d.opts.pinDir, "cgroup"), 0o700); err != nil {
		return fmt.Errorf("creating cgroup link pin directory: %w", err)
	}
	for _, h := range cgroupHooks {
		pin := d.cgroupPin(h)
		if l, err := link.LoadPinnedLink(pin, nil); err == nil {
			on := cgroupLinkOn(l) == id
			if on {
				err = l.Update(h.prog(d.objs))
			}
			l.Close()
			if on {
				if err != nil {
					return fmt.Errorf("updating %s program of cgroup %s: %w", h.name, path, err)
				}
				continue
			}
			// Pinned on another cgroup: replace it below.
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: h.attach, Program: h.prog(d.objs)})
		if err != nil {
			if errors.Is(err, ebpf.ErrNotSupported) {
				return fmt.Errorf("%w: cgroup %s hook (Linux 5.8 or newer for bpf links)", ErrUnsupportedKernel, h.name)
			}
			return fmt.Errorf("attaching %s to cgroup %s: %w", h.name, path, err)
		}
		tmp := pin + "_new"
		_ = os.Remove(tmp)
		if err := l.Pin(tmp); err != nil {
			l.Close()
			return fmt.Errorf("pinning %s link of cgroup %s: %w", h.name, path, err)
		}
		// The rename drops the old pin, which detaches the old link.
		if err := os.Rename(tmp, pin); err != nil {
			_ = l.Unpin()
			l.Close()
			return fmt.Errorf("pinning %s link of cgroup %s: %w", h.name, path, err)
		}
		l.Close()
	}
	d.log.Info("socket-level Service translation attached", "cgroup", path)
	return nil
}

// cgroupLinkOn returns the cgroup id a link is attached to (0 if unknown).
func cgroupLinkOn(l link.Link) uint64 {
	info, err := l.Info()
	if err != nil {
		return 0
	}
	if c := info.Cgroup(); c != nil {
		return c.CgroupId
	}
	return 0
}

// adoptCgroupLinks switches pinned cgroup links to the freshly loaded
// programs. Called from New.
func (d *Datapath) adoptCgroupLinks() error {
	var errs []error
	for _, h := range cgroupHooks {
		pin := d.cgroupPin(h)
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				d.log.Warn("removing unreadable cgroup link pin", "pin", pin, "err", err)
				_ = os.Remove(pin)
			}
			continue
		}
		if err := l.Update(h.prog(d.objs)); err != nil {
			errs = append(errs, fmt.Errorf("updating %s program of the Pod cgroup: %w", h.name, err))
		}
		l.Close()
	}
	return errors.Join(errs...)
}

// DefaultCgroupMount is where ResolveCgroup mounts the cgroup v2 hierarchy
// when the caller's mount namespace has none (`ip netns exec` replaces
// /sys, for one).
const DefaultCgroupMount = "/run/nodemesh/cgroupv2"

// ResolveCgroup turns a path in the cgroup v2 hierarchy (as
// /proc/<pid>/cgroup shows it, e.g. /kubepods) into a directory that
// AttachCgroup takes: under the hierarchy's mount in this mount namespace,
// or under DefaultCgroupMount after mounting it there when there is none.
func ResolveCgroup(path string) (string, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return "", fmt.Errorf("cgroup path %q: must be absolute and clean, as in /proc/<pid>/cgroup", path)
	}
	mount, err := cgroup2.Mount()
	if err != nil {
		return "", err
	}
	if mount == "" {
		if err := os.MkdirAll(DefaultCgroupMount, 0o755); err != nil {
			return "", fmt.Errorf("creating %s: %w", DefaultCgroupMount, err)
		}
		if err := unix.Mount("cgroup2", DefaultCgroupMount, "cgroup2", 0, ""); err != nil {
			return "", fmt.Errorf("mounting the cgroup v2 hierarchy at %s: %w", DefaultCgroupMount, err)
		}
		mount = DefaultCgroupMount
	}
	dir := filepath.Join(mount, path)
	if _, err := cgroupID(dir); err != nil {
		return "", err
	}
	return dir, nil
}
