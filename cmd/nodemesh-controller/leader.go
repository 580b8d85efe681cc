package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lease timing: client-go's usual values. A new leader takes over at most
// leaseDuration after the old one stopped renewing.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// errLostLease ends the controller when another replica took the Lease;
// the pod restarts and campaigns again rather than writing status
// concurrently with the new leader.
var errLostLease = errors.New("lost the leader election Lease")

// runElected runs run only while this process holds the Lease ns/name,
// and returns when ctx ends or the Lease is lost. The Lease is released on
// a clean shutdown so a successor need not wait for it to expire.
func runElected(ctx context.Context, core kubernetes.Interface, ns, name, identity string, log *slog.Logger, run func(context.Context) error) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: name},
		Client:     core.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	lost := false
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("leading", "lease", ns+"/"+name, "identity", identity)
				runErr = run(ctx)
				cancel()
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					lost = true
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("configuring leader election: %w", err)
	}
	le.Run(ctx)
	if runErr != nil {
		return runErr
	}
	if lost {
		return errLostLease
	}
	return nil
}
