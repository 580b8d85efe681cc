package controlplane

import (
	"context"
	"os/exec"
	"path/filepath"

	"github.com/nodemesh/nodemesh/internal/child"
)

// Process is one child program with its output in a log file.
type Process = child.Process

// Exec starts another program the way the cluster's own are started (same
// Command wrapper, log in LogDir, stopped by Stop before the control
// plane). env, when non-nil, replaces the environment.
func (c *Cluster) Exec(name string, env []string, bin string, args ...string) (*Process, error) {
	return c.startEnv(name, env, bin, args...)
}

func (c *Cluster) start(_ context.Context, name, bin string, args ...string) (*Process, error) {
	return c.startEnv(name, nil, bin, args...)
}

func (c *Cluster) startEnv(name string, env []string, bin string, args ...string) (*Process, error) {
	cmd := c.command(bin, args...)
	if env != nil {
		cmd.Env = env
	}
	return c.Run(name, cmd)
}

// Run starts cmd the way the cluster's own programs are started (output
// in LogDir/<name>.log, its own process group, SIGKILL if this process
// dies) and stops it with them, before the control plane. The lab runs
// node programs this way, each in its node's namespace.
func (c *Cluster) Run(name string, cmd *exec.Cmd) (*Process, error) {
	p, err := child.Start(name, filepath.Join(c.dir, "logs", name+".log"), cmd)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}
