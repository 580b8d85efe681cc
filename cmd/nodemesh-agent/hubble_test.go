package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nodemesh/nodemesh/mesh/flow"
	observerpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/observer"
)

// TestServeHubble: the agent's flow store is served as Hubble's Observer
// on the Unix socket, under the node's name; a second agent cannot take
// over a socket a running one serves.
func TestServeHubble(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	state, err := os.MkdirTemp("", "nm-hubble")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(state) })
	sock := filepath.Join(state, "hubble.sock")
	store := flow.NewStore(flow.WithCapacity(16))
	store.Add(flow.Flow{Time: time.Now(), Protocol: flow.ProtocolHTTP, Verdict: flow.Forwarded})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 2)
	_, err = serveHubble(ctx, store, "node-a", sock, "", log, errc)
	must(t, err)
	if _, err := serveHubble(ctx, store, "node-b", sock, "", log, errc); err == nil {
		t.Fatal("a second observer took over the socket")
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	c := observerpb.NewObserverClient(conn)
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	ss, err := c.ServerStatus(rctx, &observerpb.ServerStatusRequest{})
	must(t, err)
	if ss.GetNumFlows() != 1 || ss.GetMaxFlows() != 16 {
		t.Fatalf("ServerStatus: %v", ss)
	}
	nodes, err := c.GetNodes(rctx, &observerpb.GetNodesRequest{})
	must(t, err)
	if len(nodes.GetNodes()) != 1 || nodes.GetNodes()[0].GetName() != "node-a" {
		t.Fatalf("GetNodes: %v", nodes)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the observer did not stop with its context")
	}
}
