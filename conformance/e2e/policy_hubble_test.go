package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nodemesh/nodemesh/internal/hubble"
	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
	observerpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/observer"
)

// hubbleCLI runs the real hubble CLI against a policy node's observer.
type hubbleCLI struct {
	t    *testing.T
	bin  string
	sock string
}

func (h hubbleCLI) args(args ...string) []string {
	return append(args, "--server", "unix://"+h.sock)
}

// run runs a command to its end and returns its standard output.
func (h hubbleCLI) run(args ...string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, h.args(args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("hubble %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// observe runs `hubble observe -o json` with args and returns the flows.
func (h hubbleCLI) observe(args ...string) []*flowpb.Flow {
	h.t.Helper()
	return parseFlows(h.t, strings.NewReader(h.run(append([]string{"observe", "-o", "json"}, args...)...)), nil)
}

// parseFlows reads the CLI's JSON lines (GetFlowsResponse messages) from
// r, passing each flow to each (when set) as it comes.
func parseFlows(t *testing.T, r io.Reader, each func(*flowpb.Flow)) []*flowpb.Flow {
	var out []*flowpb.Flow
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var resp observerpb.GetFlowsResponse
		if err := protojson.Unmarshal(sc.Bytes(), &resp); err != nil {
			t.Errorf("hubble printed a line that is not a GetFlowsResponse: %v\n%s", err, sc.Text())
			continue
		}
		if f := resp.GetFlow(); f != nil {
			out = append(out, f)
			if each != nil {
				each(f)
			}
		}
	}
	return out
}

func describe(fs []*flowpb.Flow) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s/%s(%d) -> %s/%s(%d) %s %s\n", f.GetType(), f.GetVerdict(), f.GetSource().GetNamespace(), f.GetSource().GetPodName(),
			f.GetSource().GetIdentity(), f.GetDestination().GetNamespace(), f.GetDestination().GetPodName(), f.GetDestination().GetIdentity(),
			f.GetDropReasonDesc(), f.GetL7().GetHttp())
	}
	return b.String()
}

// isDeniedExhaust: the L7 denial of the Star Wars demo, with both pods
// and their identities.
func isDeniedExhaust(f *flowpb.Flow) bool {
	h := f.GetL7().GetHttp()
	return f.GetVerdict() == flowpb.Verdict_DROPPED && h.GetMethod() == "PUT" && strings.HasSuffix(h.GetUrl(), "/v1/exhaust-port") &&
		h.GetCode() == 403 && f.GetSource().GetPodName() == "tiefighter" && f.GetDestination().GetPodName() == "deathstar" &&
		f.GetSource().GetNamespace() == "default" && f.GetSource().GetIdentity() >= 256 && f.GetDestination().GetIdentity() >= 256
}

// isXwingDrop: the datapath's L3/L4 drop of the xwing's connection.
func isXwingDrop(f *flowpb.Flow) bool {
	return f.GetType() == flowpb.FlowType_L3_L4 && f.GetVerdict() == flowpb.Verdict_DROPPED &&
		f.GetDropReasonDesc() == flowpb.DropReason_POLICY_DENIED && f.GetSource().GetPodName() == "xwing" &&
		f.GetSource().GetIdentity() >= 256 && f.GetDestination().GetPodName() == "deathstar" && f.GetL4().GetTCP().GetDestinationPort() == 80
}

// TestHubbleStarWars runs the real hubble CLI against the node's Hubble
// Observer during Cilium's Star Wars demo (through the eBPF datapath and
// the builtin proxy): `hubble observe --follow` started before the
// traffic sees the denied PUT /v1/exhaust-port with both pods' names and
// identities and the L3/L4 drop of the xwing as they happen; `hubble
// observe --protocol http --verdict DROPPED`, `--pod`, `--http-status`
// and `--verdict DROPPED --type drop` select exactly what they name; and
// `hubble status` is healthy and counts the flows.
func TestHubbleStarWars(t *testing.T) {
	h := hubbleCLI{t: t, bin: hubble.ForTest(t)}
	n := startPolicyNode(t, 3)
	h.sock = n.hubbleSock
	deathstar, tiefighter, xwing := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	serveHTTP(t, deathstar, 80, deathstarHandler())
	url := fmt.Sprintf("http://%s/v1/", deathstar.IPv4)

	// Follow from before the traffic.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := exec.CommandContext(ctx, h.bin, h.args("observe", "--follow", "-o", "json")...)
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	follow.Stderr = newTestWriter(t)
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var followed []*flowpb.Flow
	sawExhaust, sawXwing := make(chan struct{}), make(chan struct{})
	var once1, once2 sync.Once
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		parseFlows(t, stdout, func(f *flowpb.Flow) {
			mu.Lock()
			followed = append(followed, f)
			mu.Unlock()
			if isDeniedExhaust(f) {
				once1.Do(func() { close(sawExhaust) })
			}
			if isXwingDrop(f) {
				once2.Do(func() { close(sawXwing) })
			}
		})
	}()
	defer func() {
		cancel()
		<-readDone
		follow.Wait()
	}()

	n.apply(starWarsPods(n) + rule1L7)
	if code, _ := request(t, tiefighter, "POST", url+"request-landing"); code != 200 {
		t.Fatalf("tiefighter landing got %d", code)
	}
	if code, _ := request(t, tiefighter, "PUT", url+"exhaust-port"); code != 403 {
		t.Fatalf("tiefighter PUT got %d, want 403", code)
	}
	cannotConnect(t, xwing, fmt.Sprintf("%s:80", deathstar.IPv4))

	for what, ch := range map[string]chan struct{}{"the denied PUT": sawExhaust, "the xwing's L3/L4 drop": sawXwing} {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			mu.Lock()
			seen := describe(followed)
			mu.Unlock()
			t.Fatalf("hubble observe --follow did not show %s within 30s; it printed:\n%s", what, seen)
		}
	}

	// L7 denials only: exactly the PUT.
	drops := h.observe("--protocol", "http", "--verdict", "DROPPED")
	if len(drops) != 1 || !isDeniedExhaust(drops[0]) {
		t.Errorf("observe --protocol http --verdict DROPPED:\n%s", describe(drops))
	}
	// The xwing's drops are L3/L4 drops with Cilium's reason.
	xw := h.observe("--verdict", "DROPPED", "--pod", "default/xwing")
	if len(xw) == 0 {
		t.Errorf("observe --verdict DROPPED --pod default/xwing printed nothing")
	}
	for _, f := range xw {
		if !isXwingDrop(f) && f.GetDestination().GetPodName() != "xwing" {
			t.Errorf("observe --verdict DROPPED --pod default/xwing printed a flow that is not an xwing drop:\n%s", describe([]*flowpb.Flow{f}))
		}
	}
	if typed := h.observe("--type", "drop", "--from-pod", "default/xwing"); len(typed) == 0 || !isXwingDrop(typed[0]) {
		t.Errorf("observe --type drop --from-pod default/xwing:\n%s", describe(typed))
	}
	// HTTP status filters.
	if got := h.observe("--http-status", "403"); len(got) != 1 || !isDeniedExhaust(got[0]) {
		t.Errorf("observe --http-status 403:\n%s", describe(got))
	}
	landed := h.observe("--http-status", "200", "--pod", "default/tiefighter", "--http-method", "POST")
	if len(landed) != 1 || landed[0].GetVerdict() != flowpb.Verdict_FORWARDED || !strings.HasSuffix(landed[0].GetL7().GetHttp().GetUrl(), "/v1/request-landing") {
		t.Errorf("observe --http-status 200 --pod default/tiefighter --http-method POST:\n%s", describe(landed))
	}
	// The default compact output (with the field mask the CLI sends for
	// it) names the pods and the verdict.
	compact := h.run("observe", "--protocol", "http", "--verdict", "DROPPED")
	if !strings.Contains(compact, "default/tiefighter") || !strings.Contains(compact, "default/deathstar") || !strings.Contains(compact, "DROPPED") {
		t.Errorf("compact output:\n%s", compact)
	}

	status := h.run("status")
	if !strings.Contains(status, "Healthcheck (via unix://"+h.sock+"): Ok") || !strings.Contains(status, "Current/Max Flows:") {
		t.Errorf("hubble status:\n%s", status)
	}
	t.Logf("hubble status:\n%s\ncompact:\n%s", status, compact)
}
