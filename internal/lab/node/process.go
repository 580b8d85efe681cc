package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// container is one container of a local Pod: a process and its history.
type container struct {
	spec corev1.Container
	argv []string
	env  []string
	log  string
	w    *network.Pod
	// cgroup is the node's Pod cgroup the process starts in ("" = the
	// runner's own).
	cgroup string

	mu         sync.Mutex
	cmd        *exec.Cmd
	running    bool
	ready      bool
	startedAt  time.Time
	restarts   int32
	last       *corev1.ContainerStateTerminated
	nextStart  time.Time
	backoff    time.Duration
	waitReason string
	waitMsg    string
	stopProbe  context.CancelFunc
}

// start runs the process inside the Pod's namespace. onExit is called
// (from another goroutine) when it exits.
func (c *container) start(onExit func()) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening log of container %s: %w", c.spec.Name, err)
	}
	// Each stream through a pipe of its own into CRI log records
	// (logs.go); the file closes when both pipes have, which may be after
	// the process exited (its children may hold them).
	lf := &logFile{f: f}
	var outR, outW, errR, errW *os.File
	if outR, outW, err = os.Pipe(); err == nil {
		if errR, errW, err = os.Pipe(); err != nil {
			outR.Close()
			outW.Close()
		}
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("creating log pipes of container %s: %w", c.spec.Name, err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", c.w.Name}, c.argv...)...)
	cmd.Env = c.env
	cmd.Dir = filepath.Dir(c.log)
	cmd.Stdout, cmd.Stderr = outW, errW
	var streams sync.WaitGroup
	startStreams := func() {
		outW.Close()
		errW.Close()
		streams.Go(func() { lf.copyStream(outR, "stdout"); outR.Close() })
		streams.Go(func() { lf.copyStream(errR, "stderr"); errR.Close() })
		go func() { streams.Wait(); f.Close() }()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if c.cgroup != "" {
		// Started inside the cgroup (clone3), so not even the first
		// connect escapes the node's socket hooks.
		cg, err := os.Open(c.cgroup)
		if err != nil {
			startStreams()
			return fmt.Errorf("opening the Pod cgroup of container %s: %w", c.spec.Name, err)
		}
		defer cg.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cg.Fd())
	}
	err = cmd.Start()
	startStreams() // the parent's write ends close either way
	if err != nil {
		return fmt.Errorf("starting container %s: %w", c.spec.Name, err)
	}
	c.cmd, c.running, c.startedAt = cmd, true, time.Now()
	c.waitReason, c.waitMsg = "", ""
	c.ready = c.spec.ReadinessProbe == nil
	if c.spec.ReadinessProbe != nil {
		ctx, cancel := context.WithCancel(context.Background())
		c.stopProbe = cancel
		go c.probe(ctx, onExit)
	}
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		code := int32(0)
		reason := "Completed"
		if err != nil {
			code, reason = 1, "Error"
			if ee, ok := err.(*exec.ExitError); ok {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int32(ws.Signal())
				} else {
					code = int32(ee.ExitCode())
				}
			}
		}
		c.last = &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: reason,
			StartedAt: metav1.NewTime(c.startedAt), FinishedAt: metav1.Now(),
		}
		c.running, c.ready, c.cmd = false, false, nil
		if c.stopProbe != nil {
			c.stopProbe()
		}
		c.mu.Unlock()
		onExit()
	}()
	return nil
}

// stop terminates the process: SIGTERM to its process group, SIGKILL after
// grace.
func (c *container) stop(grace time.Duration) {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		running := c.running
		c.mu.Unlock()
		if !running {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		c.mu.Lock()
		running := c.running
		c.mu.Unlock()
		if !running {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe runs the readiness probe while the process lives.
func (c *container) probe(ctx context.Context, changed func()) {
	p := c.spec.ReadinessProbe
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	if p.PeriodSeconds == 0 {
		period = 10 * time.Second
	}
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
	}
	for {
		ok := c.check(ctx, p, timeout)
		c.mu.Lock()
		was := c.ready
		c.ready = ok && c.running
		now := c.ready
		c.mu.Unlock()
		if was != now {
			changed()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
	}
}

func (c *container) check(ctx context.Context, p *corev1.Probe, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := func(v intstr.IntOrString) string {
		if v.Type == intstr.Int {
			return strconv.Itoa(int(v.IntVal))
		}
		for _, cp := range c.spec.Ports {
			if cp.Name == v.StrVal {
				return strconv.Itoa(int(cp.ContainerPort))
			}
		}
		return v.StrVal
	}
	addr := c.w.IP.String()
	switch {
	case p.TCPSocket != nil:
		conn, err := c.w.Dial(ctx, "tcp", net.JoinHostPort(addr, port(p.TCPSocket.Port)))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	case p.HTTPGet != nil:
		client := &http.Client{Transport: &http.Transport{DialContext: c.w.Dial, DisableKeepAlives: true}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(addr, port(p.HTTPGet.Port))+p.HTTPGet.Path, nil)
		if err != nil {
			return false
		}
		for _, h := range p.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400
	}
	return false
}

// status renders the container's state for the Pod status.
func (c *container) status() corev1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := corev1.ContainerStatus{
		Name: c.spec.Name, Image: c.spec.Image, ImageID: c.spec.Image,
		Ready: c.ready && c.running, RestartCount: c.restarts, LastTerminationState: corev1.ContainerState{},
	}
	started := c.running
	st.Started = &started
	switch {
	case c.running:
		st.ContainerID = fmt.Sprintf("nodemesh://%d", c.cmd.Process.Pid)
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.startedAt.Truncate(time.Second))}
		if c.last != nil {
			st.LastTerminationState.Terminated = truncTerm(c.last)
		}
	case c.waitReason != "":
		st.State.Waiting = &corev1.ContainerStateWaiting{Reason: c.waitReason, Message: c.waitMsg}
		if c.last != nil {
			st.LastTerminationState.Terminated = truncTerm(c.last)
		}
	case c.last != nil:
		st.State.Terminated = truncTerm(c.last)
	default:
		st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return st
}

func truncTerm(t *corev1.ContainerStateTerminated) *corev1.ContainerStateTerminated {
	cp := *t
	cp.StartedAt = metav1.NewTime(t.StartedAt.Truncate(time.Second))
	cp.FinishedAt = metav1.NewTime(t.FinishedAt.Truncate(time.Second))
	return &cp
}
