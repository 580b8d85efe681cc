package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The binaries' Pdeathsig is tied to the thread that starts them; keeping
// the main goroutine on the main thread makes that thread live as long as
// the process (see start).
func init() { runtime.LockOSThread() }

type options struct {
	bin, state, manifests string
	check                 bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory holding nodemesh-agent, nodemesh-proxy and nodemesh")
	flag.StringVar(&o.state, "state-dir", ".state/starwars", "directory for the agent's config directory, sockets and logs (emptied first)")
	flag.StringVar(&o.manifests, "manifests", "examples/starwars", "directory holding the policy files the demo applies")
	flag.BoolVar(&o.check, "check", false, "verify every outcome and exit (non-zero on any mismatch) instead of running until Ctrl-C")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "starwars:", err)
		os.Exit(1)
	}
}

func run(o options) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces and loads eBPF programs (try: sudo make run-mesh)")
	}
	for _, b := range []string{"nodemesh-agent", "nodemesh-proxy", "nodemesh"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("missing %s: run 'make build' first", filepath.Join(o.bin, b))
		}
	}
	unlock, err := lockState(o.state)
	if err != nil {
		return err
	}
	defer unlock()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	d := &demo{out: os.Stdout}
	fmt.Fprintln(d.out, "nodemesh mesh demo: Cilium's Star Wars scenario on this machine, with the eBPF datapath and the node proxy")
	n, err := up(ctx, o, d)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted; up removed what it had built
		}
		return err
	}
	defer func() {
		fmt.Fprintln(d.out, "\nTearing down: proxy, agent, datapath (programs, routing rules, pins), network namespaces.")
		if derr := n.down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("tearing down: %w", derr))
		}
	}()
	if err := walkthrough(ctx, d, n); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted
		}
		return err
	}
	if len(d.failures) > 0 {
		fmt.Fprintf(d.out, "\n%d outcome(s) differ from Cilium's demo:\n  %s\n", len(d.failures), strings.Join(d.failures, "\n  "))
	}
	if o.check {
		if len(d.failures) > 0 {
			return fmt.Errorf("check failed; logs in %s", o.state)
		}
		fmt.Fprintln(d.out, "\nstarwars check: every outcome as in Cilium's demo")
		return nil
	}
	printTryIt(d, n)
	select {
	case <-ctx.Done():
		return nil
	case err := <-n.died():
		return err
	}
}

// printTryIt tells the user how to poke at the running demo.
func printTryIt(d *demo, n *node) {
	env := filepath.Join(n.o.state, "env")
	cli := filepath.Join(n.o.bin, "nodemesh")
	fmt.Fprintf(d.out, `
Everything keeps running until Ctrl-C. In another shell (as root), from here:
  source %[1]s           # defines tiefighter, xwing, deathstar1, deathstar2, mesh_node and $DEATHSTAR
  xwing curl -sS --connect-timeout 2 -X POST http://$DEATHSTAR%[2]s
  tiefighter curl -sS -X PUT http://$DEATHSTAR%[3]s
  %[4]s flows --socket %[5]s -f          # follow L7 flows
  %[4]s status --socket %[5]s
  cp %[6]s %[7]s      # back to L3/L4 only
  rm %[7]s                                # no policy at all
Logs: %[8]s, %[9]s
`, env, landing, exhaustPort, cli, n.agentSock, filepath.Join(n.o.manifests, l34PolicyFile),
		filepath.Join(n.config, policyTarget), n.agent.log, n.proxy.log)
}

// lockState keeps two demos from sharing one state directory (the second
// would empty the first's). The lock dies with the process, even on
// kill -9.
func lockState(state string) (func(), error) {
	path := filepath.Clean(state) + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another demo is running with %s (%s is locked): stop it first", state, path)
	}
	return func() { f.Close() }, nil
}
