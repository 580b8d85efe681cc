package modbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Go runs the go command in the nested module, with Env added to the
// environment, its output going to log after the command line (behind
// Prefix, so the logs of several builds tell apart).
func (c Cache) Go(ctx context.Context, log io.Writer, args ...string) error {
	cmd := c.command(ctx, args)
	cmd.Stdout, cmd.Stderr = log, log
	fmt.Fprintf(log, "%s: go %s\n", c.Prefix, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// GoOutput runs the go command in the nested module like Go and returns
// what it prints, trimmed; what it writes to standard error goes into
// the error if it fails.
func (c Cache) GoOutput(ctx context.Context, args ...string) (string, error) {
	out, err := c.command(ctx, args).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("running go %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (c Cache) command(ctx context.Context, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(c.Root, c.Module)
	if c.Env != nil {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	return cmd
}
