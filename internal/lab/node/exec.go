package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/apimachinery/pkg/util/remotecommand"
)

// Exec, as a kubelet serves it.
//
// The runner serves POST (or GET) /exec/<namespace>/<pod>/<container> on
// the kubelet port, with the same TLS and client-certificate rule as the
// logs: the API server forwards `kubectl exec` and the pods/exec
// subresource there (it talks SPDY to the kubelet whether its own client
// spoke SPDY or WebSocket). The query carries the command (one
// "command" parameter per word) and which streams are wanted ("input",
// "output", "error"); the connection is upgraded to SPDY/3.1 with
// remote-command protocol v4 or v5 (v5 only adds a close signal that
// matters on WebSockets, so both behave alike here), and the client opens
// one SPDY stream per standard stream plus the error stream, on which the
// result is written as a Status (Success, or NonZeroExitCode with the exit
// code as cause), as the kubelet writes it.
//
// The command runs the way a container runs: inside the Pod's network
// namespace, in the node's Pod cgroup, with the container's environment.
// Its first word is looked up first among the commands the container's
// image provides (Image.Commands: the mesh echo image's "client"), then
// as a program on this machine, as a lab container's own command is.
//
// Decisions:
//   - no TTY: a terminal would need a pseudo-terminal and resize handling
//     the lab's uses do not need; a request asking for one gets 400 naming
//     it, before the upgrade, rather than a stream that half works;
//   - protocol versions 1-3 are refused (no client of this release speaks
//     only those), so the error stream always carries a Status;
//   - bounds: the client must open its streams within
//     remotecommand.DefaultStreamCreationTimeout (30 s, the kubelet's), a
//     connection idle for execIdleTimeout is closed, at most maxExecs
//     commands run at once per node (more get 429), and the command is
//     killed (its whole process group) when the connection goes away;
//     what it leaves running in its process group is killed when it
//     exits, so the output streams end with it.

// execIdleTimeout closes an exec connection that moved no data that long.
const execIdleTimeout = 30 * time.Minute

// maxExecs bounds the commands a node runs for exec at once.
const maxExecs = 64

// execProtocols are the remote-command protocols served, most preferred
// first.
var execProtocols = []string{remotecommand.StreamProtocolV5Name, remotecommand.StreamProtocolV4Name}

// execTarget is what exec needs of a running Pod's container.
type execTarget struct {
	uid      string
	netns    string
	cgroup   string
	env      []string
	dir      string
	commands map[string][]string
}

// execTargets holds the exec targets of the Pods placed on this node, by
// "<namespace>/<pod>/<container>": written by the sync loop, read by
// exec requests.
type execTargets struct {
	mu      sync.Mutex
	targets map[string]execTarget
	running int
}

func (e *execTargets) set(key string, t execTarget) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.targets == nil {
		e.targets = map[string]execTarget{}
	}
	e.targets[key] = t
}

func (e *execTargets) remove(prefix string, containers []*container) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range containers {
		delete(e.targets, prefix+"/"+c.spec.Name)
	}
}

func (e *execTargets) get(key string) (execTarget, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.targets[key]
	return t, ok
}

// acquire takes one of the maxExecs slots.
func (e *execTargets) acquire() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running >= maxExecs {
		return false
	}
	e.running++
	return true
}

func (e *execTargets) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running--
}

// execOptions are the query parameters of an exec request.
type execOptions struct {
	command               []string
	stdin, stdout, stderr bool
}

func parseExecOptions(req *http.Request) (execOptions, error) {
	q := req.URL.Query()
	flag := func(name string) bool {
		v := q.Get(name)
		return v == "1" || v == "true"
	}
	o := execOptions{
		command: q[corev1.ExecCommandParam],
		stdin:   flag(corev1.ExecStdinParam), stdout: flag(corev1.ExecStdoutParam), stderr: flag(corev1.ExecStderrParam),
	}
	switch {
	case flag(corev1.ExecTTYParam):
		return o, errors.New("tty: a terminal is not supported by the lab's kubelet (run without -t)")
	case len(o.command) == 0 || o.command[0] == "":
		return o, errors.New("command: no command given")
	case !o.stdin && !o.stdout && !o.stderr:
		return o, errors.New("at least one of input, output and error must be requested")
	}
	return o, nil
}

// podExec answers one exec request.
func (r *Runner) podExec(w http.ResponseWriter, req *http.Request) {
	ns, name, cname := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container")
	t, ok := r.execs.get(ns + "/" + name + "/" + cname)
	if !ok {
		http.Error(w, fmt.Sprintf("container %s of pod %s/%s is not running on node %s", cname, ns, name, r.cfg.Node.Name), http.StatusNotFound)
		return
	}
	opts, err := parseExecOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	argv, err := t.resolve(opts.command)
	if err != nil {
		// Before the upgrade, so the client sees why.
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !r.execs.acquire() {
		http.Error(w, fmt.Sprintf("node %s runs %d exec commands already", r.cfg.Node.Name, maxExecs), http.StatusTooManyRequests)
		return
	}
	defer r.execs.release()
	if _, err := httpstream.Handshake(req, w, execProtocols); err != nil {
		return // Handshake answered the client
	}
	streams := make(chan httpstream.Stream, 8)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, req, func(s httpstream.Stream, _ <-chan struct{}) error {
		select {
		case streams <- s:
			return nil
		default:
			return errors.New("too many streams")
		}
	})
	if conn == nil {
		return // the upgrader answered the client
	}
	defer conn.Close()
	conn.SetIdleTimeout(execIdleTimeout)
	st, err := waitStreams(req, conn, streams, opts)
	if err != nil {
		r.log.Debug("exec streams", "pod", ns+"/"+name, "err", err)
		return
	}
	res := r.runExec(t, argv, st, conn.CloseChan())
	r.log.Debug("exec", "pod", ns+"/"+name, "container", cname, "command", opts.command, "result", res.Message)
	b, err := json.Marshal(res)
	if err == nil {
		_, _ = st.errs.Write(b)
	}
	st.errs.Close()
}

// execStreams are the client's streams of one exec.
type execStreams struct {
	stdin, stdout, stderr, errs httpstream.Stream
}

// waitStreams collects the streams opts asks for, within the kubelet's
// stream creation timeout.
func waitStreams(req *http.Request, conn httpstream.Connection, in <-chan httpstream.Stream, opts execOptions) (execStreams, error) {
	var st execStreams
	want := 1 // the error stream
	for _, b := range []bool{opts.stdin, opts.stdout, opts.stderr} {
		if b {
			want++
		}
	}
	timeout := time.NewTimer(remotecommand.DefaultStreamCreationTimeout)
	defer timeout.Stop()
	for got := 0; got < want; {
		select {
		case s := <-in:
			var slot *httpstream.Stream
			switch s.Headers().Get(corev1.StreamType) {
			case corev1.StreamTypeError:
				slot = &st.errs
			case corev1.StreamTypeStdin:
				slot = &st.stdin
			case corev1.StreamTypeStdout:
				slot = &st.stdout
			case corev1.StreamTypeStderr:
				slot = &st.stderr
			default:
				s.Reset()
				continue
			}
			if *slot != nil {
				s.Reset()
				return st, fmt.Errorf("stream %s opened twice", s.Headers().Get(corev1.StreamType))
			}
			*slot = s
			got++
		case <-timeout.C:
			return st, errors.New("the client did not open its streams in time")
		case <-conn.CloseChan():
			return st, errors.New("connection closed before the streams were opened")
		case <-req.Context().Done():
			return st, req.Context().Err()
		}
	}
	if st.errs == nil {
		return st, errors.New("no error stream")
	}
	return st, nil
}

// resolve turns the command into the argv to run: an image command, or a
// local program.
func (t execTarget) resolve(command []string) ([]string, error) {
	if prog, ok := t.commands[command[0]]; ok {
		return append(append([]string(nil), prog...), command[1:]...), nil
	}
	path, err := exec.LookPath(command[0])
	if err != nil {
		return nil, fmt.Errorf("command %q: neither a command of the container's image nor a program on this machine", command[0])
	}
	return append([]string{path}, command[1:]...), nil
}

// runExec runs argv in the Pod with the streams wired, and returns the
// Status the error stream carries.
func (r *Runner) runExec(t execTarget, argv []string, st execStreams, closed <-chan bool) metav1.Status {
	cmd := exec.Command("ip", append([]string{"netns", "exec", t.netns}, argv...)...)
	cmd.Env, cmd.Dir = t.env, t.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if t.cgroup != "" {
		cg, err := os.Open(t.cgroup)
		if err != nil {
			return failure(fmt.Errorf("opening the Pod cgroup: %w", err))
		}
		defer cg.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cg.Fd())
	}
	// Output through pipes the runner drains, so the command's exit is
	// reported only after everything it wrote was sent.
	var copies sync.WaitGroup
	pipeTo := func(s httpstream.Stream) (*os.File, error) {
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		copies.Go(func() {
			_, _ = io.Copy(s, pr)
			pr.Close()
			s.Close()
		})
		return pw, nil
	}
	var parentEnds []*os.File
	if st.stdout != nil {
		pw, err := pipeTo(st.stdout)
		if err != nil {
			return failure(err)
		}
		cmd.Stdout, parentEnds = pw, append(parentEnds, pw)
	}
	if st.stderr != nil {
		pw, err := pipeTo(st.stderr)
		if err != nil {
			closeAll(parentEnds)
			return failure(err)
		}
		cmd.Stderr, parentEnds = pw, append(parentEnds, pw)
	}
	var stdin io.WriteCloser
	if st.stdin != nil {
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			closeAll(parentEnds)
			return failure(err)
		}
	}
	err := cmd.Start()
	closeAll(parentEnds) // the child holds its own copies
	if err != nil {
		copies.Wait()
		return failure(fmt.Errorf("starting %s: %w", argv[0], err))
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, st.stdin)
			stdin.Close()
		}()
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-exited:
	case <-closed:
		// The client went away: nobody reads the output any more.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-exited
	}
	// What the command left running would hold the output open: an exec
	// session ends with its process.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	copies.Wait()
	if werr == nil {
		return metav1.Status{Status: metav1.StatusSuccess}
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) && ee.ExitCode() > 0 {
		code := strconv.Itoa(ee.ExitCode())
		return metav1.Status{
			Status: metav1.StatusFailure, Reason: remotecommand.NonZeroExitCodeReason,
			Message: "command terminated with non-zero exit code: " + code,
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: remotecommand.ExitCodeCauseType, Message: code}}},
		}
	}
	return failure(werr)
}

func failure(err error) metav1.Status {
	return metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Message: err.Error()}
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
