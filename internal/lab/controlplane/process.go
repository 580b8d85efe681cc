package controlplane

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Process is one child program with its output in a log file.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Process) Err() error { return p.err }

// LogPath is the file holding the process's output.
func (p *Process) LogPath() string { return p.logPath }

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
	logPath := filepath.Join(c.dir, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Children die with the test process even if it is killed, and get
	// their own process group so stopping one never signals its parent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// Name is the name the process was started with.
func (p *Process) Name() string { return p.name }

// stop sends SIGTERM, and SIGKILL if the process is still running after
// grace.
func (p *Process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
