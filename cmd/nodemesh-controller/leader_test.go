package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// TestLeaderElectionHandsOver runs two candidates against a real
// kube-apiserver: only the first runs while it holds the Lease, and when it
// shuts down it releases the Lease and the second takes over without
// waiting for the Lease to expire.
func TestLeaderElectionHandsOver(t *testing.T) {
	c := controlplane.ForTest(t, "standard")
	core, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	started := make(chan string, 2)
	run := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			started <- id
			<-ctx.Done()
			return nil
		}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- runElected(ctxA, core, "default", "lease", "a", log, run("a")) }()
	select {
	case id := <-started:
		if id != "a" {
			t.Fatalf("%s leads, want a", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a never led")
	}
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneB := make(chan error, 1)
	go func() { doneB <- runElected(ctxB, core, "default", "lease", "b", log, run("b")) }()
	// b campaigns every retryPeriod; over several periods it must not lead.
	select {
	case id := <-started:
		t.Fatalf("%s leads while a holds the Lease", id)
	case <-time.After(3 * retryPeriod):
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("a: %v", err)
	}
	// Released on cancel: b leads within a retry period or two, well
	// before the Lease would expire.
	select {
	case id := <-started:
		if id != "b" {
			t.Fatalf("%s leads, want b", id)
		}
	case <-time.After(leaseDuration + 30*time.Second):
		t.Fatal("b never led after a released the Lease")
	}
	stopB()
	if err := <-doneB; err != nil {
		t.Fatalf("b: %v", err)
	}
}
