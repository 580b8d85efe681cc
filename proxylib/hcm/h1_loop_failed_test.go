package hcm

import (
	"runtime"
	"testing"
	"time"
)

// A loop that stops before Close says so on Failed (proxylib's Run stops
// the proxy on it); one stopped by Close does not.
func TestLoopsFailedOnlyBeforeClose(t *testing.T) {
	if old := runtime.GOMAXPROCS(0); old < 3 {
		runtime.GOMAXPROCS(3)
		defer runtime.GOMAXPROCS(old)
	}
	ls, err := StartLoops(2)
	if err != nil {
		t.Fatal(err)
	}
	ls.loops[1].l.Close() // as if its epoll set had failed
	select {
	case err := <-ls.Failed():
		if err == nil {
			t.Fatal("Failed delivered a nil error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a loop stopped on its own and Failed said nothing")
	}
	ls.Close()
	select {
	case err := <-ls.Failed():
		t.Fatalf("Close made Failed report %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}
