package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// etcNetnsDir is where `ip netns exec NAME` finds files (resolv.conf,
// hosts) it bind-mounts over /etc for commands run in namespace NAME.
const etcNetnsDir = "/etc/netns"

// EtcDir is the directory whose files `ip netns exec` shows a command
// run inside the namespace in place of /etc's (resolv.conf, hosts). It
// is removed with the namespace by Delete and by Sweep.
func (n *Namespace) EtcDir() string { return filepath.Join(etcNetnsDir, n.Name) }

// Pids lists the processes whose network namespace is n. A namespace
// outlives its name while a process uses it, so this is how a run finds
// what it started there, grandchildren included.
func (n *Namespace) Pids() ([]int, error) {
	var st unix.Stat_t
	if err := unix.Stat(n.Path, &st); err != nil {
		return nil, fmt.Errorf("reading network namespace %s: %w", n.Name, err)
	}
	return pidsIn(st.Dev, st.Ino)
}

// pidsIn lists processes whose /proc/<pid>/ns/net is the namespace file
// (dev, ino). Processes that exit during the scan are skipped.
func pidsIn(dev, ino uint64) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue
		}
		if st.Dev == dev && st.Ino == ino {
			out = append(out, pid)
		}
	}
	return out, nil
}

// KillAll sends SIGKILL to every process in the namespace and waits (up
// to five seconds) until none is left. The namespace itself stays.
func (n *Namespace) KillAll() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := n.Pids()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		live := pids[:0]
		for _, p := range pids {
			// Zombies stay listed until their parent reaps them, but they
			// no longer hold anything.
			if alive(p) {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still run in network namespace %s", live, n.Name)
		}
		for _, p := range live {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
