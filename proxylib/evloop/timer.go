package evloop

import "container/heap"

// Timer calls its function on the loop's goroutine once, at or after the
// time it was armed for. The zero Timer with F set is ready to use.
type Timer struct {
	F  func()
	at int64 // loop clock, nanoseconds
	i  int   // heap index + 1; 0 when not armed
}

// Armed reports whether t waits to fire.
func (t *Timer) Armed() bool { return t.i != 0 }

type timerHeap []*Timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(a, b int) bool { return h[a].at < h[b].at }
func (h timerHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].i, h[b].i = a+1, b+1
}
func (h *timerHeap) Push(x any) {
	t := x.(*Timer)
	t.i = len(*h) + 1
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.i = 0
	return t
}

// Arm makes t fire at loop clock at (see Now); an armed t is moved.
// Loop goroutine only.
func (l *Loop) Arm(t *Timer, at int64) {
	t.at = at
	if t.i != 0 {
		heap.Fix(&l.timers, t.i-1)
		return
	}
	heap.Push(&l.timers, t)
}

// Stop disarms t; it reports whether t was armed. Loop goroutine only.
func (l *Loop) Stop(t *Timer) bool {
	if t.i == 0 {
		return false
	}
	heap.Remove(&l.timers, t.i-1)
	return true
}

// maxWaitMsec bounds one wait for a far timer (epoll_wait takes an int).
const maxWaitMsec = 60_000

// fire runs every timer due at now and returns the wait until the next
// one in milliseconds, rounded up, or -1 when none is armed.
func (l *Loop) fire(now int64) int {
	for len(l.timers) > 0 {
		t := l.timers[0]
		if t.at > now {
			return int(min((t.at-now+999_999)/1_000_000, maxWaitMsec))
		}
		heap.Pop(&l.timers)
		t.F()
		now = l.clock()
	}
	return -1
}
