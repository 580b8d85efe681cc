package evloop

import (
	"testing"
	"time"
)

// Timers fire in time order, never before their time; a stopped timer
// never fires; re-arming moves a timer.
func TestTimers(t *testing.T) { eachMode(t, testTimers) }

func testTimers(t *testing.T) {
	l := newLoop(t)
	start(t, l)
	type firing struct {
		name     string
		at, when int64
	}
	fired := make(chan firing, 8)
	mk := func(name string) *Timer {
		tm := &Timer{}
		tm.F = func() { fired <- firing{name, tm.at, l.Now()} }
		return tm
	}
	a, b, c, d := mk("a"), mk("b"), mk("c"), mk("d")
	onLoop(t, l, func() {
		now := l.Now()
		ms := int64(time.Millisecond)
		l.Arm(a, now+30*ms)
		l.Arm(b, now+10*ms)
		l.Arm(c, now+20*ms)
		l.Arm(d, now+15*ms)
		if !l.Stop(d) || d.Armed() {
			t.Error("Stop of an armed timer")
		}
		if l.Stop(d) {
			t.Error("Stop of a stopped timer reported armed")
		}
		l.Arm(a, now+5*ms) // moved before b
	})
	var order []string
	for range 3 {
		select {
		case f := <-fired:
			if f.when < f.at {
				t.Errorf("timer %s fired %v early", f.name, time.Duration(f.at-f.when))
			}
			order = append(order, f.name)
		case <-time.After(10 * time.Second):
			t.Fatalf("timers fired: %v", order)
		}
	}
	if got := order[0] + order[1] + order[2]; got != "abc" {
		t.Fatalf("timers fired in order %q, want abc", got)
	}
	select {
	case f := <-fired:
		t.Fatalf("stopped timer %s fired", f.name)
	case <-time.After(50 * time.Millisecond):
	}
}

// fire computes the wait to the next timer rounded up, never zero early.
func TestFireWait(t *testing.T) {
	l := &Loop{}
	tm := &Timer{F: func() {}}
	l.Arm(tm, 1_500_001)
	if w := l.fire(1_000_000); w != 1 {
		t.Fatalf("wait %d ms for 0.500001 ms, want 1", w)
	}
	if w := l.fire(0); w != 2 {
		t.Fatalf("wait %d ms for 1.500001 ms, want 2", w)
	}
	l.Arm(tm, int64(time.Hour))
	if w := l.fire(0); w != maxWaitMsec {
		t.Fatalf("wait %d ms for an hour, want the %d bound", w, maxWaitMsec)
	}
}
