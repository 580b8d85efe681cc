package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// uplink is every lab node's interface on the lab network (package
// network): traffic from other nodes enters there.
const uplink = "eth0"

// mountBPFFS mounts the lab's own bpf filesystem at <dir>/bpffs/<ID>,
// where every node's datapath pins (a directory per node). It belongs to
// the lab: pinned datapaths outlive their agent by design, and Close
// unmounts it with everything pinned in it; the name carries the lab's
// process id, so testbed.Sweep unmounts the one of a killed lab. The
// agents see it although `ip netns exec` gives them a mount namespace of
// their own: that namespace starts as a copy of the lab's.
func (l *Lab) mountBPFFS() error {
	dir := filepath.Join(l.Dir, "bpffs", l.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting a bpf filesystem at %s: %w", dir, err)
	}
	l.bpffs = dir
	return nil
}

func (l *Lab) unmountBPFFS() error {
	if l.bpffs == "" {
		return nil
	}
	if err := unix.Unmount(l.bpffs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmounting %s: %w", l.bpffs, err)
	}
	dir := l.bpffs
	l.bpffs = ""
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
