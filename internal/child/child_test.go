package child

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a child program instead of
// running the tests.
const helperEnv = "CHILD_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	case "wait":
	case "parent":
		// Start a grandchild the same way and say which it is.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=wait")
		g, err := Start("grandchild", os.DevNull, cmd)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("grandchild", g.cmd.Process.Pid)
	}
	fmt.Println("ready")
	// Sleep rather than block forever: the runtime would end a program
	// whose every goroutine is blocked.
	for {
		time.Sleep(time.Hour)
	}
}

// helper starts the test binary as a child in the given mode and waits
// until it has said it is ready (with SIGTERM ignored, if asked).
func helper(t *testing.T, mode string) *Process {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	p, err := Start("helper", filepath.Join(t.TempDir(), "helper.log"), cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(0) })
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.LogTail(1), "ready") {
		select {
		case <-p.Done():
			t.Fatalf("helper exited: %v", p.Err())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("helper never said it was ready")
		}
	}
	return p
}

func signalOf(t *testing.T, err error) syscall.Signal {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("exit error %v, want an *exec.ExitError", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		t.Fatalf("the child exited with %v, not by a signal", err)
	}
	return ws.Signal()
}

// TestStartLogs: standard output and error are appended to the log file,
// the exit status is Err once Done closes, and LogTail reads the last
// lines.
func TestStartLogs(t *testing.T) {
	log := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(log, []byte("earlier run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Start("x", log, exec.Command("sh", "-c", "echo one; echo two >&2; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Err = %v, want exit status 3", p.Err())
	}
	if b, err := os.ReadFile(log); err != nil || string(b) != "earlier run\none\ntwo\n" {
		t.Fatalf("log %q, %v", b, err)
	}
	if got := p.LogTail(2); got != "one\ntwo" {
		t.Fatalf("LogTail(2) = %q", got)
	}
	if got := p.LogTail(10); got != "earlier run\none\ntwo" {
		t.Fatalf("LogTail(10) = %q", got)
	}
	if p.Name() != "x" || p.LogPath() != log {
		t.Fatalf("Name, LogPath = %q, %q", p.Name(), p.LogPath())
	}
	p.Stop(time.Second) // an exited process: returns at once
	if _, err := Start("y", filepath.Join(t.TempDir(), "missing", "y.log"), exec.Command("true")); err == nil || !strings.Contains(err.Error(), "opening y log") {
		t.Fatalf("Start with an unwritable log: %v", err)
	}
}

// TestStopTerminates: Stop ends a child with SIGTERM when it obeys, and
// with SIGKILL after the grace period when it ignores SIGTERM. Each child
// leads its own process group.
func TestStopTerminates(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		grace time.Duration
		want  syscall.Signal
	}{
		{"wait", time.Minute, syscall.SIGTERM},
		{"ignore-term", 200 * time.Millisecond, syscall.SIGKILL},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			p := helper(t, tc.mode)
			pid := p.cmd.Process.Pid
			if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
				t.Fatalf("process group %d (%v), want its own (%d)", pgid, err, pid)
			}
			p.Stop(tc.grace)
			select {
			case <-p.Done():
			default:
				t.Fatal("Stop returned before the child exited")
			}
			if got := signalOf(t, p.Err()); got != tc.want {
				t.Fatalf("the child ended by %v, want %v", got, tc.want)
			}
			p.Stop(tc.grace) // again: returns at once
		})
	}
}

// TestChildDiesWithParent: when the process that started a child is
// killed (no chance to stop its children), the child gets SIGKILL.
func TestChildDiesWithParent(t *testing.T) {
	p := helper(t, "parent")
	var pid int
	for _, l := range strings.Split(p.LogTail(2), "\n") {
		if s, ok := strings.CutPrefix(l, "grandchild "); ok {
			pid, _ = strconv.Atoi(s)
		}
	}
	if pid <= 0 {
		t.Fatalf("no grandchild in the helper's output:\n%s", p.LogTail(10))
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if !alive(pid) {
		t.Fatal("the grandchild is not running")
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	// The kernel signals the orphan as its parent exits; it is gone (or
	// a zombie left to its new parent) soon after.
	deadline := time.Now().Add(time.Minute)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the grandchild %d outlived its parent", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not exited.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}
