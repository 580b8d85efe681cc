package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodemesh/nodemesh/datapath/cgroup2"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// stateFile, in the lab's directory, describes a running lab to the
// commands that act on it from other processes (exec, kubectl, down).
const stateFile = "lab.json"

// State is what a running lab publishes in <dir>/lab.json.
type State struct {
	// PID is the process that runs the lab (its namespaces carry it).
	PID int `json:"pid"`
	// ID prefixes the lab's network namespace names.
	ID            string    `json:"id"`
	Dir           string    `json:"dir"`
	Kubeconfig    string    `json:"kubeconfig"`
	LabKubeconfig string    `json:"labKubeconfig"`
	Kubectl       string    `json:"kubectl"`
	ControlPlane  string    `json:"controlPlaneNetns"`
	Nodes         []Node    `json:"nodes"`
	Started       time.Time `json:"started"`
}

// State describes the lab.
func (l *Lab) State() State {
	return State{
		PID: os.Getpid(), ID: l.ID, Dir: l.Dir, Kubeconfig: l.Kubeconfig, LabKubeconfig: l.LabKubeconfig,
		Kubectl: l.Binaries.Kubectl, ControlPlane: l.Network.ControlPlane.Name, Nodes: l.Nodes, Started: time.Now(),
	}
}

func (l *Lab) writeState() error {
	b, err := json.MarshalIndent(l.State(), "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.Dir, "."+stateFile)
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(l.Dir, stateFile))
}

// ErrNoLab means no lab runs with the given state directory.
var ErrNoLab = errors.New("no lab is running")

// LoadState reads the state of the lab in dir. It returns ErrNoLab when
// there is none, or when the process that ran it is gone.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (start one with `nodemesh lab up`)", ErrNoLab, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("reading lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(dir, stateFile), err)
	}
	if !s.Running() {
		return &s, fmt.Errorf("%w in %s: its process %d is gone (`nodemesh lab up` removes what is left)", ErrNoLab, dir, s.PID)
	}
	return &s, nil
}

// Running says whether the lab's process still runs. A pid reused by an
// unrelated process does not count: the lab's namespaces would be gone.
func (s *State) Running() bool {
	if s.PID <= 0 || syscall.Kill(s.PID, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(s.PID) + "/stat")
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	_, err = os.Stat(filepath.Join("/run/netns", s.ControlPlane))
	return err == nil
}

// RESTConfig is an admin client configuration for the lab, from this
// machine.
func (s *State) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.Kubeconfig, err)
	}
	return cfg, nil
}

// ExecArgv returns the command line that runs argv inside the network
// namespace of Pod namespace/name (with the Pod's resolv.conf: `ip netns
// exec` mounts it over /etc/resolv.conf in a private mount namespace).
// container, when set, must name one of the Pod's containers; every
// container of a lab Pod shares its namespace and this machine's files.
func (s *State) ExecArgv(ctx context.Context, namespace, name, container string, argv []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command to run")
	}
	cfg, err := s.RESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	p, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("finding Pod %s/%s: %w", namespace, name, err)
	}
	if container != "" {
		found := false
		for _, c := range p.Spec.Containers {
			found = found || c.Name == container
		}
		if !found {
			return nil, fmt.Errorf("Pod %s/%s has no container %q", namespace, name, container)
		}
	}
	if p.Spec.NodeName == "" || p.Status.PodIP == "" {
		return nil, fmt.Errorf("Pod %s/%s is not running yet (phase %s%s)", namespace, name, p.Status.Phase, waitingReason(p))
	}
	ns := network.PodNamespace(s.ID, string(p.UID))
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
		return nil, fmt.Errorf("Pod %s/%s has no network namespace here (%s): %w", namespace, name, ns, err)
	}
	exec := append([]string{"ip", "netns", "exec", ns}, argv...)
	for _, n := range s.Nodes {
		if n.Name != p.Spec.NodeName || n.Cgroup == "" {
			continue
		}
		mount, err := cgroup2.Mount()
		if err != nil || mount == "" {
			return nil, fmt.Errorf("Pod %s/%s runs in cgroup %s, but this mount namespace has no cgroup v2 hierarchy (%v)", namespace, name, n.Cgroup, err)
		}
		// Like a container's exec, the command joins the node's Pod
		// cgroup (and with it the node's socket-level Service
		// translation) before it runs.
		join := `echo $$ > "$0/cgroup.procs" && exec "$@"`
		return append([]string{"sh", "-c", join, filepath.Join(mount, n.Cgroup)}, exec...), nil
	}
	return exec, nil
}

func waitingReason(p *corev1.Pod) string {
	for _, c := range p.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil && w.Reason != "" {
			return ", " + w.Reason + ": " + w.Message
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return ", " + c.Reason + ": " + c.Message
		}
	}
	return ""
}

// labEntries are the names a lab creates in its directory.
var labEntries = map[string]bool{
	stateFile: true, "." + stateFile: true, "lab.log": true, "kubeconfig": true, "cluster": true, "nodes": true, "pods": true, "bpffs": true, "chart": true,
}

// CheckDir refuses a directory that holds anything but what a lab puts
// there: Down removes the directory, and a mistyped --state-dir must not
// take a user's files with it.
func CheckDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if !labEntries[e.Name()] {
			return fmt.Errorf("%s is not a lab's state directory (it holds %s); choose another", dir, e.Name())
		}
	}
	return nil
}

// Down stops the lab in dir, if one runs, and removes everything it left:
// its processes, network namespaces, /etc/netns files and the directory.
// It is what `nodemesh lab down` does and safe to run when nothing runs.
func Down(dir string, grace time.Duration) error {
	if err := CheckDir(dir); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	var s State
	if err == nil && json.Unmarshal(b, &s) == nil && s.Running() {
		_ = syscall.Kill(s.PID, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for s.Running() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if s.Running() {
			_ = syscall.Kill(s.PID, syscall.SIGKILL)
			for i := 0; i < 100 && s.Running(); i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// Whatever the lab's process did not remove belongs to a dead process
	// now: the sweep stops what runs in its namespaces and deletes them.
	sweepErr := errors.Join(testbed.Sweep(), sweepPodCgroups())
	if err := os.RemoveAll(dir); err != nil {
		return errors.Join(sweepErr, fmt.Errorf("removing %s: %w", dir, err))
	}
	return sweepErr
}
