package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, *ir.Config) (dataplane.Publication, error) {
	return dataplane.Publication{}, nil
}
func (nopPublisher) Proxies() []dataplane.Proxy { return nil }

// Changed never fires: no proxy ever answers.
func (nopPublisher) Changed() <-chan struct{} { return nil }

// serveAPI serves a's local API on a fresh socket until ctx ends, and
// returns the socket's path once it accepts connections.
func serveAPI(ctx context.Context, t *testing.T, a *agent.Agent) string {
	t.Helper()
	// A short path: Unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "nm-api")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	go a.ServeAPI(ctx, sock)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("agent API never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFlowsCommand(t *testing.T) {
	store := flow.NewStore()
	a, err := agent.New(agent.Config{Publisher: nopPublisher{}, Flows: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := serveAPI(ctx, t, a)
	store.Add(flow.Flow{Time: time.Now(), Protocol: "http", Verdict: flow.Dropped, Direction: "ingress",
		Source:      flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.20:4000"), Identity: 257, Workload: "default/tiefighter"},
		Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.10:80"), Identity: 256, Workload: "default/deathstar"},
		HTTP:        &flow.HTTP{Method: "PUT", Path: "/v1/exhaust-port", Status: 403}})
	store.Add(flow.Flow{Time: time.Now(), Protocol: "kafka", Verdict: flow.Forwarded,
		Kafka: &flow.Kafka{APIKeyName: "Fetch", APIVersion: 12, Topics: []string{"events"}}})

	var out bytes.Buffer
	if err := flowsCmd([]string{"--socket", sock, "--verdict", "DROPPED", "--identity", "257"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "default/tiefighter 10.0.0.20:4000 (257)") ||
		!strings.Contains(lines[1], "PUT /v1/exhaust-port 403") || !strings.Contains(lines[1], "DROPPED") {
		t.Fatalf("table output:\n%s", out.String())
	}
	out.Reset()
	if err := flowsCmd([]string{"--socket", sock, "-o", "json", "--protocol", "kafka"}, &out); err != nil {
		t.Fatal(err)
	}
	var f flow.Flow
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &f); err != nil || f.Kafka.Topics[0] != "events" {
		t.Fatalf("json output %q: %v", out.String(), err)
	}
	if err := flowsCmd([]string{"--socket", sock, "-o", "yaml"}, &out); err == nil {
		t.Error("an unknown format must be an error")
	}
}
