package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/lab/workload"
)

// node is everything the demo runs: the bed (node namespace plus one
// namespace per Pod), the deathstar servers, a private bpf filesystem for
// the datapath's pins, nodemesh-agent and nodemesh-proxy.
type node struct {
	o          options
	bed        *testbed.Bed
	bpffs      string
	servers    []*http.Server
	agent      *process
	proxy      *process
	deathstars []*ship
	tiefighter *ship
	xwing      *ship

	config, agentSock, xdsSock, pinDir string
}

func (n *node) ships() []*ship {
	return append(append([]*ship(nil), n.deathstars...), n.tiefighter, n.xwing)
}

// up builds the node. On error everything built so far is torn down.
func up(ctx context.Context, o options, d *demo) (_ *node, err error) {
	n := &node{o: o, config: filepath.Join(o.state, "config"), agentSock: filepath.Join(o.state, "agent.sock")}
	// The proxy's xDS address is a URL: an absolute path keeps it unambiguous.
	if n.xdsSock, err = filepath.Abs(filepath.Join(o.state, "xds.sock")); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.down())
		}
	}()
	// A run killed with -9 leaves its namespaces and bpffs behind; the
	// sweep removes those whose creating process is gone.
	if err := testbed.Sweep(); err != nil {
		d.note("removing leftovers of an earlier run: %v", err)
	}
	if err := os.RemoveAll(o.state); err != nil {
		return nil, fmt.Errorf("clearing %s: %w", o.state, err)
	}
	if err := os.MkdirAll(n.config, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", n.config, err)
	}

	if n.bed, err = testbed.Create(testbed.Config{Workloads: 4}); err != nil {
		return nil, fmt.Errorf("creating the network namespaces: %w", err)
	}
	n.deathstars, n.tiefighter, n.xwing = fleet(n.bed.Workloads)
	if err := n.mountBPFFS(); err != nil {
		return nil, err
	}
	for _, s := range n.deathstars {
		if err := n.serveDeathstar(s); err != nil {
			return nil, err
		}
	}
	d.printBed(n)

	if err := writeAtomic(filepath.Join(n.config, appFile), []byte(podsYAML(n.ships()))); err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(o.state, "env"), []byte(envScript(n.ships(), n.bed.Node))); err != nil {
		return nil, err
	}

	d.say("Start the agent: it watches %s, compiles network policy and programs the eBPF datapath of the node namespace.", n.config)
	agentArgs := []string{
		"--config-dir", n.config, "--state-dir", o.state,
		"--datapath", "--datapath-netns", n.bed.Node.Path, "--datapath-pin-dir", n.pinDir,
		"--node-ips", testbed.NodeIPv4.String() + "," + testbed.NodeIPv6.String(),
	}
	d.command(append([]string{filepath.Join(o.bin, "nodemesh-agent")}, agentArgs...), " &")
	cmd := exec.Command(filepath.Join(o.bin, "nodemesh-agent"), agentArgs...)
	if n.agent, err = start("nodemesh-agent", cmd, filepath.Join(o.state, "agent.log")); err != nil {
		return nil, err
	}
	if err := n.waitAPI(ctx); err != nil {
		return nil, err
	}

	d.say("Start the node proxy inside the node namespace, where the datapath redirects to it.")
	proxyArgs := []string{"--xds-address", "unix://" + n.xdsSock, "--node-id", "starwars-node", "--drain-timeout", "1s"}
	d.command(append([]string{"ip", "netns", "exec", n.bed.Node.Name, filepath.Join(o.bin, "nodemesh-proxy")}, proxyArgs...), " &")
	cmd = n.bed.Node.Command(context.Background(), filepath.Join(o.bin, "nodemesh-proxy"), proxyArgs...)
	if n.proxy, err = start("nodemesh-proxy", cmd, filepath.Join(o.state, "proxy.log")); err != nil {
		return nil, err
	}
	return n, nil
}

// mountBPFFS gives the datapath a bpf filesystem of its own, named so
// that testbed.Sweep unmounts it once this process is gone.
func (n *node) mountBPFFS() error {
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s-%d-bpffs-", testbed.Prefix, os.Getpid()))
	if err != nil {
		return fmt.Errorf("creating the bpffs mount point: %w", err)
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		os.Remove(dir)
		return fmt.Errorf("mounting bpffs at %s: %w", dir, err)
	}
	n.bpffs, n.pinDir = dir, filepath.Join(dir, "nodemesh")
	return nil
}

// serveDeathstar answers like the deathstar of Cilium's demo (the lab's
// deathstar workload), on port 80 inside the ship's namespace.
func (n *node) serveDeathstar(s *ship) error {
	l, err := s.w.Listen("tcp", ":80")
	if err != nil {
		return fmt.Errorf("listening in %s: %w", s.name, err)
	}
	srv := &http.Server{Handler: workload.DeathstarHandler(), ReadHeaderTimeout: 5 * time.Second}
	n.servers = append(n.servers, srv)
	go srv.Serve(l)
	return nil
}

// waitAPI waits until the agent answers on its local API socket.
func (n *node) waitAPI(ctx context.Context) error {
	for deadline := time.Now().Add(15 * time.Second); ; {
		if err := n.agent.exited(); err != nil {
			return err
		}
		if _, err := os.Stat(n.agentSock); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodemesh-agent did not open %s within 15s; see %s", n.agentSock, n.agent.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exited reports a binary that stopped on its own.
func (n *node) exited() error {
	for _, p := range []*process{n.agent, n.proxy} {
		if p != nil {
			if err := p.exited(); err != nil {
				return err
			}
		}
	}
	return nil
}

// down removes everything up created, in reverse order, and reports what
// it could not remove. Safe on a partly built node.
func (n *node) down() error {
	var errs []error
	errs = append(errs, n.proxy.stop(5*time.Second), n.agent.stop(5*time.Second))
	if n.agent != nil {
		// The agent leaves the datapath running on exit (an agent restart
		// must not drop connections); the demo removes it for good.
		errs = append(errs, n.uninstallDatapath())
	}
	for _, s := range n.servers {
		errs = append(errs, s.Close())
	}
	if n.bed != nil {
		errs = append(errs, n.bed.Close())
	}
	if n.bpffs != "" {
		if err := unix.Unmount(n.bpffs, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", n.bpffs, err))
		} else {
			errs = append(errs, os.Remove(n.bpffs))
		}
	}
	for _, sock := range []string{n.agentSock, n.xdsSock} {
		if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// uninstallDatapath detaches the programs, removes the routing rules and
// the pins the agent left in the node namespace.
func (n *node) uninstallDatapath() error {
	if _, err := os.Stat(n.pinDir); errors.Is(err, os.ErrNotExist) {
		return nil // the agent never loaded it
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dp, err := datapath.New(datapath.WithPinDir(n.pinDir), datapath.WithNetNS(n.bed.Node.Path), datapath.WithLogger(quiet))
	if err != nil {
		return fmt.Errorf("opening the datapath to uninstall it: %w", err)
	}
	if err := dp.Uninstall(); err != nil {
		return fmt.Errorf("uninstalling the datapath: %w", err)
	}
	return nil
}

// cmdline renders argv as it would be typed in a shell.
func cmdline(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`|&;<>(){}*?[]#~!%") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// died delivers an error when the agent or the proxy stops on its own.
func (n *node) died() <-chan error {
	c := make(chan error, 1)
	go func() {
		select {
		case <-n.agent.done:
			c <- n.agent.exited()
		case <-n.proxy.done:
			c <- n.proxy.exited()
		}
	}()
	return c
}
