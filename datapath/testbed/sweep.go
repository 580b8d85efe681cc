package testbed

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// ownerPID extracts the creating process from a name made by NewID (or a
// bpffs directory made by BPFFS): "<Prefix>-<pid>-...".
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, Prefix+"-")
	if !ok {
		return 0, false
	}
	pidStr, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidStr)
	return pid, err == nil && pid > 0
}

// alive reports whether pid is a running process. A zombie (exited, not
// yet reaped by its parent) counts as gone: it will never clean up.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	if err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return err != nil && !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command, which may itself
	// contain spaces or parentheses.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// Sweep removes what crashed runs left behind: namespaces (and the
// processes still running in them), their /etc/netns files, and bpffs
// mounts whose creating process is gone. Live runs' resources are never
// touched.
func Sweep() error {
	var errs []error
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listing %s: %w", netnsDir, err)
	}
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || alive(pid) {
			continue
		}
		// Children die with their parent (Pdeathsig), but not what they
		// started in turn: a crashed run's grandchildren may still run in
		// its namespaces.
		ns := &Namespace{Name: e.Name(), Path: filepath.Join(netnsDir, e.Name())}
		if err := ns.KillAll(); err != nil {
			errs = append(errs, fmt.Errorf("stopping processes of stale namespace %s: %w", e.Name(), err))
		}
		if err := ns.Delete(); err != nil {
			errs = append(errs, fmt.Errorf("removing stale namespace %s: %w", e.Name(), err))
		}
	}
	// Files for `ip netns exec` of namespaces that are gone already.
	etc, err := os.ReadDir(etcNetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("listing %s: %w", etcNetnsDir, err))
	}
	for _, e := range etc {
		if pid, ok := ownerPID(e.Name()); ok && !alive(pid) {
			if err := os.RemoveAll(filepath.Join(etcNetnsDir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("removing stale %s: %w", e.Name(), err))
			}
		}
	}
	mounts, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer mounts.Close()
	sc := bufio.NewScanner(mounts)
	for sc.Scan() {
		// Fields: id parent major:minor root mountpoint ... - fstype ...
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 || fields[sep+1] != "bpf" {
			continue
		}
		mp := fields[4]
		pid, ok := ownerPID(filepath.Base(mp))
		if !ok || alive(pid) {
			continue
		}
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting stale bpffs %s: %w", mp, err))
			continue
		}
		_ = os.Remove(mp)
	}
	return errors.Join(errs...)
}

var sweepOnce sync.Once

// RequireRoot skips the test unless it runs as root, which everything here
// needs (namespaces, BPF, netlink).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root (network namespaces, BPF); CI runs it as root")
	}
}

// New creates a bed for a test and removes it when the test ends, failed
// or not. The first call in a process also sweeps crashed runs' leftovers.
func New(t testing.TB, cfg Config) *Bed {
	t.Helper()
	RequireRoot(t)
	sweepOnce.Do(func() {
		if err := Sweep(); err != nil {
			t.Logf("sweeping leftovers of earlier runs: %v", err)
		}
	})
	b, err := Create(cfg)
	if err != nil {
		t.Fatalf("creating test bed: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("removing test bed: %v", err)
		}
	})
	return b
}

// BPFFS mounts a private bpf filesystem for the test and returns its path;
// it is unmounted when the test ends.
func BPFFS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s-%d-bpffs-", Prefix, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		os.Remove(dir)
		t.Fatalf("mounting bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting bpffs %s: %v", dir, err)
			return
		}
		os.Remove(dir)
	})
	return dir
}

// NewNS creates a bare namespace (loopback only) for a test and deletes
// it when the test ends.
func NewNS(t testing.TB, role string) *Namespace {
	t.Helper()
	RequireRoot(t)
	ns, err := NewNamespace(NewID() + "-" + role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("removing namespace: %v", err)
		}
	})
	return ns
}

// OwnerGone reports whether name was made by NewID (or BPFFS) of a process
// that is no longer running: what carries the name is a crashed run's
// leftover, for callers that sweep resources of their own.
func OwnerGone(name string) bool {
	pid, ok := ownerPID(name)
	return ok && !alive(pid)
}
