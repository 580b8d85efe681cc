package modbuild

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestGoRunsInTheModule: the go command runs in the nested module with
// Env added, its command line and output go to the log, and a failure
// names the command (and, for GoOutput, what it printed to stderr).
func TestGoRunsInTheModule(t *testing.T) {
	c, _ := testCache(t)
	ctx := context.Background()
	var log bytes.Buffer
	if err := c.Go(ctx, &log, "list", "-m"); err != nil {
		t.Fatal(err)
	}
	if got := log.String(); got != "tool: go list -m\nm\n" {
		t.Fatalf("log %q", got)
	}
	if out, err := c.GoOutput(ctx, "list", "-m", "-f", "{{.Path}}"); err != nil || out != "m" {
		t.Fatalf("GoOutput = %q, %v", out, err)
	}
	c.Env = []string{"GOFLAGS=-mod=mod"}
	if out, err := c.GoOutput(ctx, "env", "GOFLAGS"); err != nil || out != "-mod=mod" {
		t.Fatalf("GoOutput with Env = %q, %v", out, err)
	}
	log.Reset()
	if err := c.Go(ctx, &log, "build", "./missing"); err == nil || !strings.Contains(err.Error(), "running go build ./missing: exit status") {
		t.Fatalf("a failing Go: %v", err)
	}
	if !strings.Contains(log.String(), "directory not found") {
		t.Fatalf("the go command's complaint is not in the log: %q", log.String())
	}
	if _, err := c.GoOutput(ctx, "build", "./missing"); err == nil || !strings.Contains(err.Error(), "running go build ./missing: exit status 1: ") || !strings.Contains(err.Error(), "directory not found") {
		t.Fatalf("a failing GoOutput: %v", err)
	}
}
