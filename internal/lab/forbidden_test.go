package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForbidden checks that a refusal of the mesh's requests is found in
// its logs however the line quotes it: as client-go's reflector logs it,
// and as an error value in a log/slog text line (inner quotes escaped);
// and that other lines, another program's logs and a refusal of a user
// that is no ServiceAccount are not taken for one.
func TestForbidden(t *testing.T) {
	l := &Lab{Dir: t.TempDir()}
	if err := os.MkdirAll(l.LogDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(l.LogDir(), name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nodemesh-controller.log", `time=x level=ERROR msg="reconciling status" err="listing XMeshes: xmeshes.gateway.networking.x-k8s.io is forbidden: User \"system:serviceaccount:kube-system:nodemesh-controller\" cannot list resource \"xmeshes\""
time=x level=INFO msg="nodemesh-controller synced"
`)
	write("nodemesh-agent-node-1.log", `E1206 reflector.go:200] "Unhandled Error" err="failed to list *v1.Secret: secrets is forbidden: User "system:serviceaccount:kube-system:nodemesh-agent" cannot list resource "secrets""
a request forbidden by the proxy's own RBAC filter
`)
	write("kube-proxy-node-1.log", `services is forbidden: User "system:serviceaccount:kube-system:kube-proxy" cannot list`+"\n")
	write("nodemesh-proxy-node-1.log", `pods is forbidden: User "alice" cannot list`+"\n")
	got, err := l.Forbidden()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "nodemesh-agent-node-1.log: ") || !strings.Contains(got[0], "secrets") ||
		!strings.HasPrefix(got[1], "nodemesh-controller.log: ") || !strings.Contains(got[1], "xmeshes") {
		t.Errorf("Forbidden() = %q, want the agent's secrets line and the controller's xmeshes line", got)
	}
}
