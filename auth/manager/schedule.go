package manager

import (
	"container/heap"
	"time"
)

// schedule orders the relations waiting for a handshake by due time. A
// state is in it at most once (idx ≥ 0); one in flight or idle is not.
type schedule []*state

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].due.Before(s[j].due) }
func (s schedule) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].idx, s[j].idx = i, j
}
func (s *schedule) Push(x any) {
	st := x.(*state)
	st.idx = len(*s)
	*s = append(*s, st)
}
func (s *schedule) Pop() any {
	old := *s
	st := old[len(old)-1]
	old[len(old)-1] = nil
	*s = old[:len(old)-1]
	st.idx = -1
	return st
}

// at (re)schedules st for t.
func (s *schedule) at(st *state, t time.Time) {
	st.due = t
	if st.idx >= 0 {
		heap.Fix(s, st.idx)
		return
	}
	heap.Push(s, st)
}

// remove takes st out of the schedule, if it is in.
func (s *schedule) remove(st *state) {
	if st.idx >= 0 {
		heap.Remove(s, st.idx)
	}
}

// next is the earliest due state, or nil.
func (s schedule) next() *state {
	if len(s) == 0 {
		return nil
	}
	return s[0]
}
