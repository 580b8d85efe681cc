package sockio

import "time"

// maxSlack bounds how late a lazily kept deadline may fire.
const maxSlack = time.Second

// Slack is how much later than asked LazyDeadline.Need arms a deadline
// for timeout d: 1 % of d, at most 1 s.
func Slack(d time.Duration) time.Duration { return min(d/100, maxSlack) }

// LazyDeadline remembers the deadline armed on one direction of a
// connection, so keep-alive traffic does not reset a runtime timer on every
// request. Need arms a deadline Slack(d) later than the exact one and keeps
// it while it is still no earlier than the exact deadline of a later call:
// a timeout never ends early, and at most Slack(d) late. Back-to-back
// requests re-arm the timer about once per Slack(d).
//
// The zero value has nothing armed. A LazyDeadline is used by the one
// goroutine that arms that direction's deadline.
type LazyDeadline struct {
	at time.Time
	d  time.Duration // the timeout at was armed for; -1 when set exactly
}

// Need returns the deadline to arm for a timeout d from now, and false when
// the armed one already lies in [now+d, now+d+Slack(d)]. d <= 0 clears
// the deadline (false when none is armed).
func (l *LazyDeadline) Need(now time.Time, d time.Duration) (time.Time, bool) {
	if d <= 0 {
		if l.at.IsZero() {
			return time.Time{}, false
		}
		*l = LazyDeadline{}
		return time.Time{}, true
	}
	want := now.Add(d)
	slack := Slack(d)
	if l.d == d && !l.at.IsZero() && !l.at.Before(want) && l.at.Sub(want) <= slack {
		return time.Time{}, false
	}
	l.at, l.d = want.Add(slack), d
	return l.at, true
}

// Set returns t to arm exactly, and false when t is armed already.
func (l *LazyDeadline) Set(t time.Time) (time.Time, bool) {
	if l.d < 0 && l.at.Equal(t) {
		return t, false
	}
	l.at, l.d = t, -1
	return t, true
}

// Within returns a deadline max after now, and false when the armed
// deadline already lies between min and max after now: a busy connection
// re-arms its timer at most once per max-min. It serves a check deadline
// that may end a wait anywhere in that window.
func (l *LazyDeadline) Within(now time.Time, min, max time.Duration) (time.Time, bool) {
	if !l.at.IsZero() {
		if left := l.at.Sub(now); left >= min && left <= max {
			return time.Time{}, false
		}
	}
	l.at, l.d = now.Add(max), max
	return l.at, true
}

// Forget records that the deadline was changed behind l's back, so the
// next call arms one.
func (l *LazyDeadline) Forget() { *l = LazyDeadline{} }
