package upstream

import (
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/sockio"
)

// TestDeadlineNeverEarly drives Conn.Deadline the way back-to-back
// requests on a keep-alive connection do (a response expected within d of
// each send, sends 100 µs or 0.1 % of d apart) and checks the deadline armed on the
// connection after every call: never before the exact one, so a response
// timeout never ends early, at most sockio.Slack(d) after it, and re-armed
// far less often than once per request.
func TestDeadlineNeverEarly(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 300 * time.Millisecond, 15 * time.Second, time.Hour} {
		var c Conn
		base := time.Unix(1_000_000, 0)
		var armed time.Time
		const sends = 5000
		rearms := 0
		for i := range sends {
			now := base.Add(time.Duration(i) * min(d/1000, 100*time.Microsecond))
			if at, ok := c.Deadline(now, d); ok {
				armed = at
				rearms++
			}
			want := now.Add(d)
			if armed.Before(want) {
				t.Fatalf("d=%v, send %d: armed deadline %v before the exact one (%v early)", d, i, armed.Sub(base), want.Sub(armed))
			}
			if late := armed.Sub(want); late > sockio.Slack(d) {
				t.Fatalf("d=%v, send %d: armed deadline %v late, slack is %v", d, i, late, sockio.Slack(d))
			}
		}
		if rearms > sends/5 {
			t.Errorf("d=%v: re-armed %d times for %d sends", d, rearms, sends)
		}
		// A later call with another timeout, or none, re-arms at once.
		now := base.Add(time.Duration(sends) * min(d/1000, 100*time.Microsecond))
		if at, ok := c.Deadline(now, d/2); !ok || !at.Equal(now.Add(d/2+sockio.Slack(d/2))) {
			t.Errorf("d=%v: Deadline(d/2) = %v, %v", d, at.Sub(base), ok)
		}
		if at, ok := c.Deadline(now, 0); !ok || !at.IsZero() {
			t.Errorf("d=%v: Deadline(0) = %v, %v, want a cleared deadline", d, at, ok)
		}
		if _, ok := c.Deadline(now, 0); ok {
			t.Errorf("d=%v: clearing a cleared deadline re-arms", d)
		}
	}
}
