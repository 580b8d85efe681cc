package workload

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/status"
)

// The tests run workloads as child processes of the test binary itself
// (so they are real processes with their own pid and, through `ip netns
// exec`, their own network namespace). TestMain dispatches on this
// variable.
const helperEnv = "NODEMESH_TEST_WORKLOAD_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv("NODEMESH_TEST_WORKLOAD_ADDR")))
	}
	os.Exit(m.Run())
}

// helperEvent is one line a helper prints.
type helperEvent struct {
	Event  string `json:"event"`
	ID     string `json:"id,omitempty"`
	SVID   string `json:"svid,omitempty"`   // base64 DER chain
	Bundle string `json:"bundle,omitempty"` // base64 DER authorities
	NetNS  string `json:"netns,omitempty"`
	Error  string `json:"error,omitempty"`
	Code   string `json:"code,omitempty"`
	PID    int    `json:"pid,omitempty"`
}

func emit(e helperEvent) {
	b, _ := json.Marshal(e)
	fmt.Println(string(b))
}

func runHelper(mode, addr string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, _ := os.Readlink("/proc/self/ns/net")
	switch mode {
	case "rotate":
		// go-spiffe's X509Source, unchanged, against the server: the
		// first SVID, then the next one after a rotation.
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
		if err != nil {
			emit(helperEvent{Event: "error", Error: err.Error()})
			return 3
		}
		defer src.Close()
		first := ""
		for {
			svid, err := src.GetX509SVID()
			if err != nil {
				emit(helperEvent{Event: "error", Error: err.Error()})
				return 3
			}
			b, err := src.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
			if err != nil {
				emit(helperEvent{Event: "error", Error: err.Error()})
				return 3
			}
			serial := svid.Certificates[0].SerialNumber.String()
			if serial != first {
				emit(helperEvent{Event: "svid", ID: svid.ID.String(), SVID: chainB64(svid), Bundle: authB64(b.X509Authorities()), NetNS: ns})
				if first != "" {
					return 0
				}
				first = serial
			}
			select {
			case <-src.Updated():
			case <-ctx.Done():
				emit(helperEvent{Event: "error", Error: "no rotation observed: " + ctx.Err().Error()})
				return 3
			}
		}
	case "once":
		svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
		if err != nil {
			emit(helperEvent{Event: "error", Error: err.Error(), Code: statusCode(err), NetNS: ns})
			return 0
		}
		emit(helperEvent{Event: "svid", ID: svid.ID.String(), SVID: chainB64(svid), NetNS: ns})
		return 0
	case "handoff":
		// Connect, hand the connection to a grandchild, and exit: the
		// connection outlives the process that made it.
		c, err := net.Dial("unix", strings.TrimPrefix(addr, "unix://"))
		if err != nil {
			emit(helperEvent{Event: "error", Error: err.Error()})
			return 3
		}
		f, err := c.(*net.UnixConn).File()
		if err != nil {
			emit(helperEvent{Event: "error", Error: err.Error()})
			return 3
		}
		cmd := exec.Command("sleep", "60")
		cmd.ExtraFiles = []*os.File{f}
		if err := cmd.Start(); err != nil {
			emit(helperEvent{Event: "error", Error: err.Error()})
			return 3
		}
		emit(helperEvent{Event: "handed", PID: cmd.Process.Pid})
		return 0
	}
	emit(helperEvent{Event: "error", Error: "unknown helper mode " + mode})
	return 2
}

func statusCode(err error) string { return status.Code(err).String() }

func authB64(certs []*x509.Certificate) string {
	var der []byte
	for _, c := range certs {
		der = append(der, c.Raw...)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func chainB64(s *x509svid.SVID) string {
	var der []byte
	for _, c := range s.Certificates {
		der = append(der, c.Raw...)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// helper runs the test binary as a workload in mode; with netns set, inside
// that named network namespace.
func helper(ctx context.Context, t *testing.T, netns, mode, addr string) []helperEvent {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{exe, "-test.run=^$"}
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "NODEMESH_TEST_WORKLOAD_ADDR="+addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v\nstdout: %s\nstderr: %s", mode, err, out, stderr.String())
	}
	var evs []helperEvent
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e helperEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("helper %s printed %q: %v (stderr: %s)", mode, line, err, stderr.String())
		}
		evs = append(evs, e)
	}
	return evs
}
