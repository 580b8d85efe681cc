package proxylib

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"
)

// Worker processes (see the package comment, "Worker processes"): the
// parent serves as worker 0 and is the only xDS client; pool runs workers
// 1..n-1 and makes every update reach all of them before it is ACKed.

const (
	// workerUpdateTimeout bounds how long a worker may take to apply one
	// update; one that takes longer is killed and restarted with the
	// configuration in force.
	workerUpdateTimeout = 60 * time.Second
	// workerQueryTimeout bounds readiness and metrics queries.
	workerQueryTimeout = 5 * time.Second
	// A worker that exits within workerStable of its start counts as a
	// failed restart; after workerMaxFailures in a row the parent gives
	// up (Run returns an error), since a worker that cannot stay up means
	// the configuration or the host is broken, not the worker.
	workerStable       = 10 * time.Second
	workerMaxFailures  = 5
	workerBackoffFirst = 100 * time.Millisecond
	workerBackoffMax   = 5 * time.Second
)

// WithWorkers serves with n processes (n > 1): this one, which also runs
// the xDS client and the admin endpoint, and n-1 workers started with
// command(i) for i in 1..n-1 (the same binary, run as a worker: see
// RunWorker). Each process opens its own SO_REUSEPORT sockets, so the
// kernel spreads connections over them. n <= 1: one process (the default).
func WithWorkers(n int, command func(index int) *exec.Cmd) Option {
	return func(o *options) { o.workers, o.workerCommand = n, command }
}

// worker is one running worker process.
type worker struct {
	index   int
	cmd     *exec.Cmd
	conn    *workerConn
	started time.Time
	exited  chan struct{} // closed once the process was reaped
}

// pool is the xDS Handler of a proxy with workers: the parent's own store
// first, then every worker.
type pool struct {
	p *Proxy
	n int // workers besides the parent

	// mu serializes configuration changes: xDS updates and the replay of
	// the configuration into a (re)started worker, so a worker joins the
	// fan-out with exactly the configuration in force.
	mu      sync.Mutex
	workers []*worker // by index-1; nil while (re)starting
	admin   string

	stopping chan struct{}
	stopOnce sync.Once
	fatal    chan error // one error: the parent gives up
	wg       sync.WaitGroup
}

func newPool(p *Proxy, n int) *pool {
	return &pool{p: p, n: n, workers: make([]*worker, n), stopping: make(chan struct{}), fatal: make(chan error, 1)}
}

// start runs the supervisor of every worker slot.
func (w *pool) start(admin string) {
	w.admin = admin
	for i := 1; i <= w.n; i++ {
		w.wg.Add(1)
		go w.supervise(i)
	}
}

// supervise keeps worker i running until the pool stops, restarting it
// with bounded backoff.
func (w *pool) supervise(i int) {
	defer w.wg.Done()
	log := w.p.o.logger.With("worker", i)
	failures := 0
	for {
		wk, err := w.spawn(i)
		if err == nil {
			select {
			case <-wk.exited:
			case <-w.stopping:
				return
			}
			w.mu.Lock()
			w.workers[i-1] = nil
			w.mu.Unlock()
			if time.Since(wk.started) >= workerStable {
				failures = 0
			}
			err = fmt.Errorf("exited: %s", wk.cmd.ProcessState)
		}
		select {
		case <-w.stopping:
			return
		default:
		}
		failures++
		if failures > workerMaxFailures {
			w.giveUp(fmt.Errorf("worker %d: %d failed restarts in a row, last: %w", i, failures-1, err))
			return
		}
		wait := min(workerBackoffFirst<<(failures-1), workerBackoffMax)
		log.Error("worker stopped; restarting", "error", err, "after", wait)
		select {
		case <-w.stopping:
			return
		case <-time.After(wait):
		}
	}
}

func (w *pool) giveUp(err error) {
	select {
	case w.fatal <- err:
	default:
	}
}

// spawn starts worker i and hands it the configuration in force; it then
// takes part in every update.
func (w *pool) spawn(i int) (*worker, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating the worker connection: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "worker"), os.NewFile(uintptr(fds[1]), "parent")
	conn, err := net.FileConn(mine)
	_ = mine.Close()
	if err != nil {
		_ = theirs.Close()
		return nil, fmt.Errorf("creating the worker connection: %w", err)
	}
	cmd := w.p.o.workerCommand(i)
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A worker outliving its parent would serve a configuration nobody
	// updates: it drains and exits with it (the broken connection does the
	// same if the signal is missed).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	cmd.Env = append(cmd.Environ(), "GOMAXPROCS=1")
	err = cmd.Start()
	_ = theirs.Close()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("starting worker %d: %w", i, err)
	}
	wk := &worker{index: i, cmd: cmd, conn: newWorkerConn(conn), started: time.Now(), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = conn.Close()
		close(wk.exited)
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.replay(wk); err != nil {
		_ = cmd.Process.Kill()
		<-wk.exited
		return nil, fmt.Errorf("configuring worker %d: %w", i, err)
	}
	w.workers[i-1] = wk
	w.p.o.logger.Info("worker started", "worker", i, "pid", cmd.Process.Pid)
	return wk, nil
}

// replay sends a new worker the admin address and every accepted type.
// Called with w.mu held.
func (w *pool) replay(wk *worker) error {
	reqs := []workerRequest{{Op: opInit, Admin: w.admin}}
	for _, a := range w.p.store.AcceptedAll() {
		reqs = append(reqs, workerRequest{Op: opUpdate, TypeURL: a.TypeURL, Version: a.Version, Resources: toWire(a.Resources), Full: true})
	}
	for _, req := range reqs {
		r, err := w.call(wk, req, workerUpdateTimeout)
		if err != nil {
			return err
		}
		if r.Err != "" {
			return errors.New(r.Err)
		}
	}
	return nil
}

func (w *pool) call(wk *worker, req workerRequest, timeout time.Duration) (workerReply, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	stop := make(chan struct{})
	go func() {
		select {
		case <-t.C:
		case <-wk.exited:
		}
		close(stop)
	}()
	r, err := wk.conn.call(req, stop)
	if err != nil && !errors.Is(err, errWorkerGone) {
		// No answer in time: the worker is stuck; its restart replays the
		// configuration in force.
		w.p.o.logger.Error("worker does not answer; killing it", "worker", wk.index, "error", err)
		_ = wk.cmd.Process.Kill()
		<-wk.exited
		err = errWorkerGone
	}
	return r, err
}

// Update applies an xDS update to the parent's store and then to every
// worker, and returns nil only if all accepted it. If the parent refuses
// it, no worker sees it. If a worker refuses it, the error names the
// worker and carries its message, and the parent and the workers that
// had accepted it are restored to the previous state, so every process
// keeps serving the last good configuration. A worker that exits during
// the update does not refuse it: its restart replays the configuration
// in force.
func (w *pool) Update(typeURL, version string, resources []*anypb.Any, removed []string, full bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.p.store.Accepted(typeURL)
	if err := w.p.store.Update(typeURL, version, resources, removed, full); err != nil {
		return err
	}
	req := workerRequest{Op: opUpdate, TypeURL: typeURL, Version: version, Resources: toWire(resources), Removed: removed, Full: full}
	type result struct {
		wk  *worker
		err error
	}
	var wg sync.WaitGroup
	results := make([]result, len(w.workers))
	for i, wk := range w.workers {
		if wk == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := w.call(wk, req, workerUpdateTimeout)
			switch {
			case err != nil: // gone: not a refusal
			case r.Err != "":
				results[i] = result{wk: wk, err: fmt.Errorf("worker %d: %s", wk.index, r.Err)}
			default:
				results[i] = result{wk: wk}
			}
		}()
	}
	wg.Wait()
	var refusals []string
	for _, r := range results {
		if r.err != nil {
			refusals = append(refusals, r.err.Error())
		}
	}
	if len(refusals) == 0 {
		return nil
	}
	nack := errors.New(strings.Join(refusals, "\n"))
	if err := w.p.store.Restore(prev, version, nack); err != nil {
		w.p.o.logger.Error("restoring the configuration after a worker refused an update", "error", err)
	}
	back := restoreRequest(prev)
	for _, r := range results {
		if r.wk == nil || r.err != nil {
			continue
		}
		if rr, err := w.call(r.wk, back, workerUpdateTimeout); err == nil && rr.Err != "" {
			// It cannot go back: restart it with the configuration in force.
			w.p.o.logger.Error("worker cannot restore the configuration; restarting it", "worker", r.wk.index, "error", rr.Err)
			_ = r.wk.cmd.Process.Kill()
		}
	}
	return nack
}

// Names reports the parent's subscriptions: every worker holds the same
// configuration.
func (w *pool) Names(typeURL string) []string { return w.p.store.Names(typeURL) }

// running returns the workers that are up.
func (w *pool) running() []*worker {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*worker, 0, len(w.workers))
	for _, wk := range w.workers {
		if wk != nil {
			out = append(out, wk)
		}
	}
	return out
}

// ready reports whether every worker is up and ready.
func (w *pool) ready() bool {
	ws := w.running()
	if len(ws) < w.n {
		return false
	}
	for _, wk := range ws {
		r, err := w.call(wk, workerRequest{Op: opState}, workerQueryTimeout)
		if err != nil || !r.Ready {
			return false
		}
	}
	return true
}

// WorkerMetrics is one worker's metrics in Prometheus' text format.
type WorkerMetrics struct {
	Index int
	Text  []byte
}

// WorkerMetrics returns the metrics of every running worker (not the
// parent's own, worker 0), for the parent's /metrics. Nil without workers.
func (p *Proxy) WorkerMetrics() []WorkerMetrics {
	if p.pool == nil {
		return nil
	}
	var out []WorkerMetrics
	for _, wk := range p.pool.running() {
		r, err := p.pool.call(wk, workerRequest{Op: opMetrics}, workerQueryTimeout)
		if err != nil || r.Err != "" {
			p.o.logger.Warn("reading worker metrics", "worker", wk.index, "error", errors.Join(err, errorOf(r.Err)))
			continue
		}
		out = append(out, WorkerMetrics{Index: wk.index, Text: r.Metrics})
	}
	return out
}

// WorkerPIDs returns the process id of every running worker by index (1..n-1).
func (p *Proxy) WorkerPIDs() map[int]int {
	out := map[int]int{}
	if p.pool != nil {
		for _, wk := range p.pool.running() {
			out[wk.index] = wk.cmd.Process.Pid
		}
	}
	return out
}

func errorOf(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

// stop ends supervision and asks every worker to drain (SIGTERM), waiting
// until they exited or ctx ends (then they are killed).
func (w *pool) stop(ctx context.Context) {
	w.stopOnce.Do(func() { close(w.stopping) })
	w.wg.Wait()
	ws := w.running()
	for _, wk := range ws {
		_ = wk.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, wk := range ws {
		select {
		case <-wk.exited:
		case <-ctx.Done():
			_ = wk.cmd.Process.Kill()
			<-wk.exited
		}
	}
}

// WorkerListeners returns each running worker's serving listeners (name →
// bound address), by index.
func (p *Proxy) WorkerListeners() map[int]map[string]string {
	out := map[int]map[string]string{}
	if p.pool == nil {
		return out
	}
	for _, wk := range p.pool.running() {
		if r, err := p.pool.call(wk, workerRequest{Op: opState}, workerQueryTimeout); err == nil {
			out[wk.index] = r.Listeners
		}
	}
	return out
}
