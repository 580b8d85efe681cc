package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/datapath/cgroup2"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// Each node's Pods run in a cgroup of their own, as kubelet puts them
// under kubepods: <cgroup2 mount>/nodemesh-lab/<lab id>/<node>. The node's
// agent attaches socket-level Service translation there (never to the
// machine's root cgroup), so a Pod's connect to a ClusterIP reaches a
// backend Pod before the first packet, and only Pods of that node are
// affected. The cgroups hold processes only (no controllers are enabled).

// podCgroupParent groups every lab's Pod cgroups under the cgroup v2 root.
const podCgroupParent = "nodemesh-lab"

// createPodCgroups makes a Pod cgroup per node and records it in l.Nodes.
// Without a cgroup v2 hierarchy the nodes get none (and Services are left
// to kube-proxy alone).
func (l *Lab) createPodCgroups() error {
	mount, err := cgroup2.Mount()
	if err != nil {
		return err
	}
	if mount == "" {
		l.log.Warn("no cgroup v2 hierarchy: Pods run without a node cgroup, socket-level Service translation is unavailable")
		return nil
	}
	l.cgroupMount = mount
	for i := range l.Nodes {
		cg := "/" + filepath.Join(podCgroupParent, l.ID, l.Nodes[i].Name)
		if err := os.MkdirAll(filepath.Join(mount, cg), 0o755); err != nil {
			return fmt.Errorf("creating the Pod cgroup of %s: %w", l.Nodes[i].Name, err)
		}
		l.Nodes[i].Cgroup = cg
	}
	return nil
}

// cgroupDir is the directory of a node's Pod cgroup in this mount
// namespace ("" without one).
func (l *Lab) cgroupDir(n Node) string {
	if n.Cgroup == "" || l.cgroupMount == "" {
		return ""
	}
	return filepath.Join(l.cgroupMount, n.Cgroup)
}

// removePodCgroups removes the lab's Pod cgroups once their processes are
// gone (it kills stragglers first).
func (l *Lab) removePodCgroups() error {
	if len(l.Nodes) == 0 || l.cgroupDir(l.Nodes[0]) == "" {
		return nil
	}
	return removeCgroupTree(filepath.Dir(l.cgroupDir(l.Nodes[0])))
}

// sweepPodCgroups removes the Pod cgroups of labs whose process died.
func sweepPodCgroups() error {
	mount, err := cgroup2.Mount()
	if err != nil || mount == "" {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(mount, podCgroupParent))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("listing lab cgroups: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() && testbed.OwnerGone(e.Name()) {
			errs = append(errs, removeCgroupTree(filepath.Join(mount, podCgroupParent, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// removeCgroupTree kills every process in dir's cgroups and removes them,
// children first. A cgroup can only be removed once its processes have
// exited, which takes a moment after SIGKILL.
func removeCgroupTree(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; {
			killCgroup(d)
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, os.ErrNotExist) {
				err = nil
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

func killCgroup(dir string) {
	// cgroup.kill (Linux 5.14+) kills the whole subtree at once, forks
	// in flight included; the process list is the fallback.
	if os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0) == nil {
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
