package config

import (
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// Returning memory after configuration updates (see the package doc):
// once updates pause for releaseQuiet (or releaseMaxWait after the first
// of a run of them), the heap is collected and its free pages go back to
// the OS, but never sooner after the previous release than releaseCost
// times the CPU time that release took.
const (
	releaseQuiet   = 100 * time.Millisecond
	releaseMaxWait = 5 * time.Second
	releaseCost    = 20 // at most 1/20 (5 %) of a CPU spent releasing
)

// releaser runs release once configuration updates pause. Its methods are
// safe for concurrent use; release runs on a timer goroutine.
type releaser struct {
	release        func()
	quiet, maxWait time.Duration
	cost           int // a release may follow the previous one after cost times the CPU it took
	// cpu returns the process's CPU time so far: a release's cost is
	// counted in CPU, not wall time, which a loaded machine stretches
	// many times over.
	cpu func() time.Duration

	mu        sync.Mutex
	timer     *time.Timer
	since     time.Time // first update not yet followed by a release; zero: none
	notBefore time.Time // the previous release's cost allows the next one from here
	running   bool
	closed    bool
}

func newReleaser() *releaser {
	return &releaser{release: debug.FreeOSMemory, quiet: releaseQuiet, maxWait: releaseMaxWait, cost: releaseCost, cpu: processCPU}
}

// processCPU returns the user and system CPU time of every thread of the
// process; 0 when it cannot be read (releases then follow each other
// after the quiet time only).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// updated records an applied update and (re)schedules the release.
func (r *releaser) updated() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	now := time.Now()
	if r.since.IsZero() {
		r.since = now
	}
	at := now.Add(r.quiet)
	if limit := r.since.Add(r.maxWait); limit.Before(at) {
		at = limit
	}
	if at.Before(r.notBefore) {
		at = r.notBefore
	}
	if r.timer == nil {
		r.timer = time.AfterFunc(at.Sub(now), r.run)
		return
	}
	r.timer.Reset(at.Sub(now))
}

func (r *releaser) run() {
	r.mu.Lock()
	// A release in progress reschedules what came in meanwhile when it
	// ends; a release the previous one's cost does not allow yet waits.
	if r.closed || r.since.IsZero() || r.running {
		r.mu.Unlock()
		return
	}
	if wait := time.Until(r.notBefore); wait > 0 {
		r.timer.Reset(wait)
		r.mu.Unlock()
		return
	}
	r.since, r.running = time.Time{}, true
	r.mu.Unlock()
	start := r.cpu()
	r.release()
	took := max(r.cpu()-start, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = false
	r.notBefore = time.Now().Add(time.Duration(r.cost) * took)
	if !r.since.IsZero() && !r.closed {
		r.timer.Reset(max(time.Until(r.notBefore), r.quiet))
	}
}

// close stops a pending release.
func (r *releaser) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
}
