package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/agent/api"
)

// TestAuthList: `nodemesh auth list` reads /v1/auth from the agent's
// socket and shows each entry with its node and expiry, and the counters
// by reason.
func TestAuthList(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(40 * time.Minute)
	st := api.AuthStatus{Source: "builtin", Ready: true, Pairs: 2, AuthRequiredDrops: 3,
		Entries: []api.AuthEntry{{Local: 256, Remote: 257, Expiry: exp}, {Local: 256, Remote: 300, RemoteNode: 1, NodeName: "node-1", Expiry: time.Now().Add(-time.Minute)}},
		Manager: map[string]uint64{"authenticated": 2, "revoked": 1}, Client: map[string]uint64{"ok": 2, "untrusted": 1}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/auth" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	})}
	go srv.Serve(l)
	defer srv.Close()

	var out bytes.Buffer
	if err := authCmd([]string{"list", "--socket", sock}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"Identity source: builtin (ready); 2 relations required by policy, 2 in the auth map; 3 packets dropped",
		"256    257     local",
		"1 (node-1)",
		"expired",
		"Manager: authenticated=2 revoked=1",
		"Handshakes initiated: ok=2 untrusted=1",
		"Handshakes answered: none",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	out.Reset()
	if err := authCmd([]string{"list", "--socket", sock, "-o", "json"}, &out); err != nil {
		t.Fatal(err)
	}
	var back api.AuthStatus
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || len(back.Entries) != 2 || back.Entries[1].NodeName != "node-1" {
		t.Fatalf("json output %s: %v", out.String(), err)
	}
	if err := authCmd([]string{"show"}, &out); err == nil {
		t.Fatal("an unknown subcommand is accepted")
	}
}
