package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/mesh/provider/file"
)

// standaloneOptions are the flags that bound what standalone mode reads
// from --config-dir.
type standaloneOptions struct {
	maxFileSize int64
	maxFiles    *int
}

func standaloneFlags() *standaloneOptions {
	o := &standaloneOptions{maxFileSize: file.DefaultMaxFileSize}
	flag.Func("config-max-file-size", "standalone mode: size of the largest config file read, in bytes or with a Ki, Mi or Gi suffix (default 4Mi); "+
		"a larger file is skipped and reported in status, and its last good version stays in effect", o.setMaxFileSize)
	o.maxFiles = flag.Int("config-max-files", file.DefaultMaxFiles, "standalone mode: how many config files --config-dir may hold; "+
		"with more, none is read, the directory is reported in status and the last good configuration stays in effect")
	return o
}

func (o *standaloneOptions) setMaxFileSize(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return err
	}
	// Value rounds up; a fraction of a byte is refused rather than rounded.
	n := q.Value()
	if n <= 0 || q.Cmp(*resource.NewQuantity(n, resource.BinarySI)) != 0 {
		return fmt.Errorf("%q is not a positive whole number of bytes", s)
	}
	o.maxFileSize = n
	return nil
}

// provider returns the provider for the config directory.
func (o *standaloneOptions) provider(dir string, log *slog.Logger) (*file.Provider, error) {
	if *o.maxFiles <= 0 {
		return nil, fmt.Errorf("--config-max-files must be positive, got %d", *o.maxFiles)
	}
	return file.New(dir, file.WithLogger(log), file.WithMaxFileSize(o.maxFileSize), file.WithMaxFiles(*o.maxFiles)), nil
}

// feed applies every view of the config directory to the agent until ctx
// ends. Problems with the input (a bad file, a directory that cannot be
// read) reach the agent's status with the snapshot still in effect.
func feed(ctx context.Context, a *agent.Agent, prov *file.Provider) error {
	return prov.Watch(ctx, func(r *file.Result) {
		_ = a.Apply(ctx, r.Snapshot, r.Errors) // failures are logged and shown in status
	})
}
