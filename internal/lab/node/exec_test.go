package node

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestExecOptions reads the kubelet's exec query as the API server writes
// it and refuses what the lab does not do, naming it.
func TestExecOptions(t *testing.T) {
	for _, tc := range []struct {
		query, err string
		want       execOptions
	}{
		{query: "command=sh&command=-c&command=echo+hi&output=1&error=1", want: execOptions{command: []string{"sh", "-c", "echo hi"}, stdout: true, stderr: true}},
		{query: "command=cat&input=1&output=1", want: execOptions{command: []string{"cat"}, stdin: true, stdout: true}},
		{query: "command=true&output=1&tty=1", err: "tty"},
		{query: "output=1", err: "no command"},
		{query: "command=&output=1", err: "no command"},
		{query: "command=true", err: "at least one"},
	} {
		got, err := parseExecOptions(httptest.NewRequest("POST", "/exec/ns/pod/c?"+tc.query, nil))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error naming %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got.command, tc.want.command) || got.stdin != tc.want.stdin || got.stdout != tc.want.stdout || got.stderr != tc.want.stderr {
			t.Errorf("%s: %+v, %v, want %+v", tc.query, got, err, tc.want)
		}
	}
}

// TestExecResolve runs an image's own command before a local program of
// the same name, and refuses a command that is neither.
func TestExecResolve(t *testing.T) {
	tgt := execTarget{commands: map[string][]string{"client": {"/opt/lab", "workload", "mesh-client"}}}
	got, err := tgt.resolve([]string{"client", "http://echo/", "--count=2"})
	if err != nil || !slices.Equal(got, []string{"/opt/lab", "workload", "mesh-client", "http://echo/", "--count=2"}) {
		t.Fatalf("image command: %q, %v", got, err)
	}
	if got, err := tgt.resolve([]string{"sh", "-c", "true"}); err != nil || !strings.HasSuffix(got[0], "/sh") || len(got) != 3 {
		t.Fatalf("local program: %q, %v", got, err)
	}
	if _, err := tgt.resolve([]string{"no-such-program-here"}); err == nil || !strings.Contains(err.Error(), "no-such-program-here") {
		t.Fatalf("unknown command: %v", err)
	}
}
