package sockio

import (
	"testing"
	"time"
)

// TestLazyDeadline checks each way of arming: Need keeps a deadline only
// while it is not early, Set arms exactly, Within keeps one inside its
// window, and Forget makes the next call arm.
func TestLazyDeadline(t *testing.T) {
	base := time.Unix(1_000_000, 0)
	var l LazyDeadline
	if _, ok := l.Need(base, 0); ok {
		t.Error("clearing with nothing armed re-arms")
	}
	d := time.Second
	at, ok := l.Need(base, d)
	if !ok || !at.Equal(base.Add(d+Slack(d))) {
		t.Fatalf("Need = %v, %v; want now+d+slack", at.Sub(base), ok)
	}
	for _, c := range []struct{ d, slack time.Duration }{
		{100 * time.Millisecond, time.Millisecond},
		{d, 10 * time.Millisecond},
		{5 * time.Minute, time.Second}, // a stream idle timeout: re-armed once a second
		{time.Hour, time.Second},       // an idle timeout
	} {
		if got := Slack(c.d); got != c.slack {
			t.Errorf("Slack(%v) = %v; want %v (1 %% of d, at most 1 s)", c.d, got, c.slack)
		}
	}
	// Within the slack the armed deadline serves; one nanosecond past it
	// it would end the wait early.
	if _, ok := l.Need(base.Add(Slack(d)), d); ok {
		t.Error("Need re-arms while the armed deadline is exactly now+d")
	}
	if at, ok := l.Need(base.Add(Slack(d)+1), d); !ok || !at.Equal(base.Add(Slack(d)+1+d+Slack(d))) {
		t.Errorf("Need past the slack = %v, %v", at.Sub(base), ok)
	}
	// A stale clock reading (earlier than the last) arms no later than
	// now+d+slack.
	if at, ok := l.Need(base, d); !ok || !at.Equal(base.Add(d+Slack(d))) {
		t.Errorf("Need with an earlier now = %v, %v", at.Sub(base), ok)
	}
	// Another timeout re-arms.
	if _, ok := l.Need(base, 2*d); !ok {
		t.Error("Need with another timeout kept the armed deadline")
	}
	// Set arms exactly, once.
	end := base.Add(300 * time.Millisecond)
	if at, ok := l.Set(end); !ok || !at.Equal(end) {
		t.Errorf("Set = %v, %v", at, ok)
	}
	if _, ok := l.Set(end); ok {
		t.Error("Set re-arms the armed deadline")
	}
	// Need after Set re-arms even when the exact deadline matches.
	if _, ok := l.Need(end.Add(-d), d); !ok {
		t.Error("Need after Set kept an exact deadline")
	}
	// Within keeps a deadline inside [min, max] from now.
	if at, ok := l.Within(base, 500*time.Millisecond, time.Second); !ok || !at.Equal(base.Add(time.Second)) {
		t.Errorf("Within = %v, %v", at.Sub(base), ok)
	}
	if _, ok := l.Within(base.Add(400*time.Millisecond), 500*time.Millisecond, time.Second); ok {
		t.Error("Within re-arms a deadline inside its window")
	}
	if _, ok := l.Within(base.Add(600*time.Millisecond), 500*time.Millisecond, time.Second); !ok {
		t.Error("Within keeps a deadline below its window")
	}
	// The deadline Within armed (base+1.6 s) serves Need only while it is
	// not early.
	if _, ok := l.Need(base.Add(600*time.Millisecond), time.Second); ok {
		t.Error("Need re-arms a deadline Within armed at exactly now+d")
	}
	if at, ok := l.Need(base.Add(700*time.Millisecond), time.Second); !ok || !at.Equal(base.Add(1710*time.Millisecond)) {
		t.Errorf("Need after Within = %v, %v; want 1.71s", at.Sub(base), ok)
	}
	l.Forget()
	if _, ok := l.Need(base, 0); ok {
		t.Error("clearing after Forget re-arms (Forget means the deadline was cleared)")
	}
	if _, ok := l.Need(base, d); !ok {
		t.Error("Need after Forget does not arm")
	}
}
