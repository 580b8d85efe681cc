package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// checkExec runs commands in lab Pods the way users and the Gateway API
// mesh conformance suite do, through the API server and the node's
// kubelet: `kubectl exec` (WebSocket to the API server, SPDY on to the
// kubelet) passes stdin, output and the exit status through and runs in
// the Pod's network namespace, on either node; client-go's SPDY executor
// (the suite's) gets stdout and stderr apart and the exit code; the mesh
// echo image's "client" command runs as the image provides it; a TTY is
// refused with the reason.
func checkExec(t *testing.T, s *State, byName map[string]PodSummary) {
	t.Helper()
	ctx := context.Background()
	kubectl := func(stdin string, args ...string) (string, int) {
		t.Helper()
		return run(t, append([]string{s.Kubectl, "--kubeconfig", s.Kubeconfig}, args...), stdin)
	}
	// kubectl adds its own line about the exit status on stderr.
	if out, code := kubectl("through the API server", "exec", "-i", "client", "--", "sh", "-c", "cat; exit 7"); code != 7 || !strings.HasPrefix(out, "through the API server") {
		t.Fatalf("kubectl exec: exit %d, output %q", code, out)
	}
	// server-2 is on the other node, whose kubelet answers; the command
	// sees the Pod's address, not the node's.
	if out, code := kubectl("", "exec", "server-2", "-c", "echo", "--", "ip", "-4", "-o", "addr"); code != 0 || !strings.Contains(out, " "+byName["server-2"].IP+"/") {
		t.Fatalf("kubectl exec in server-2 (%s): exit %d, output %q", byName["server-2"].IP, code, out)
	}
	// The image's own command, against its own server.
	var out string
	eventually(t, "mesh client", 30*time.Second, func() error {
		var code int
		out, code = kubectl("", "exec", "mesh", "--", "client", "http://"+byName["mesh"].IP+":8080/mesh", "-H", "X-Lab:exec")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		return nil
	})
	for _, re := range []string{`(?m)^\[0\] StatusCode=200$`, `(?m)^\[0 body\] Hostname=mesh$`, `(?m)^\[0 body\] RequestHeader=X-Lab:exec$`, `(?m)^\[0 body\] URL=/mesh$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("mesh client output has no %s:\n%s", re, out)
		}
	}

	// client-go's SPDY executor, as the suite execs, with the kubeconfig
	// kubectl used.
	cfg, err := s.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	spdy := func(opts corev1.PodExecOptions) (string, string, error) {
		req := core.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("client").SubResource("exec").
			VersionedParams(&opts, scheme.ParameterCodec)
		e, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err = e.StreamWithContext(sctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr, Tty: opts.TTY})
		return stdout.String(), stderr.String(), err
	}
	stdout, stderr, err := spdy(corev1.PodExecOptions{Container: "curl", Command: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Stdout: true, Stderr: true})
	var ce exec.CodeExitError
	if !errors.As(err, &ce) || ce.Code != 3 || stdout != "out\n" || stderr != "err\n" {
		t.Fatalf("SPDY exec: %v (%T), stdout %q, stderr %q", err, err, stdout, stderr)
	}
	if stdout, _, err := spdy(corev1.PodExecOptions{Container: "curl", Command: []string{"true"}, Stdout: true, Stderr: true}); err != nil || stdout != "" {
		t.Fatalf("SPDY exec of true: %v, %q", err, stdout)
	}
	if _, _, err := spdy(corev1.PodExecOptions{Container: "curl", Command: []string{"true"}, Stdout: true, TTY: true}); err == nil || !strings.Contains(err.Error(), "tty") {
		t.Fatalf("SPDY exec with a TTY: %v, want a refusal naming tty", err)
	}
	if _, _, err := spdy(corev1.PodExecOptions{Container: "curl", Command: []string{"/no/such/program"}, Stdout: true}); err == nil || !strings.Contains(err.Error(), "/no/such/program") {
		t.Fatalf("SPDY exec of a missing program: %v, want an error naming it", err)
	}
}
