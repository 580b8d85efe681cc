package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/internal/lab"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/lab/workload"
)

const labUsage = `nodemesh lab — a local Kubernetes cluster with nodemesh on every node (root)

Usage:
  nodemesh lab up [--nodes N] [-f PATH]... [--state-dir DIR] [--bin-dir DIR] [--no-policy] [--agent-arg ARG]... [--foreground]
      Build (cached) and start the control plane, N nodes with kube-proxy and nodemesh, the
      cluster DNS; apply the manifests of every -f file or directory, wait for their Pods, their
      Services and (on every node) their network policies; print the kubeconfig. The agents,
      proxies and controller run with the command, args and env that charts/nodemesh renders
      for the lab (values and manifests in <state>/chart/<node>/). Every node's
      agent loads the datapath and enforces network policy applied through the API server;
      --no-policy runs the Gateway API mode only. --agent-arg adds a nodemesh-agent flag on every
      node ({node}, {ip}, {netnsPath}, {stateDir}, {pinDir}, {cgroup} are replaced per node).
  nodemesh lab exec POD [-n NAMESPACE] [-c CONTAINER] -- COMMAND [ARG...]
      Run a command inside the Pod's network namespace, resolving with the cluster DNS.
  nodemesh lab kubectl [ARG...]
      Run kubectl (same Kubernetes release) against the lab.
  nodemesh lab down [--state-dir DIR]
      Stop the lab and remove everything it created.
  nodemesh lab images
      List the images the lab runs and the built-in workload each maps to.
  nodemesh lab workload NAME [ARG...]
      Run a built-in workload (what lab Pods run): ` + "echo, deathstar, grpc-echo, kafka, idle" + `

The state directory defaults to .state/lab in the repository (or $NODEMESH_LAB_STATE_DIR); run the
commands from the repository.
`

func labCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, labUsage)
		return &exitError{2}
	}
	switch args[0] {
	case "up":
		return labUp(args[1:], stdout, stderr)
	case "daemon":
		return labDaemon(args[1:])
	case "down":
		return labDown(args[1:], stdout)
	case "exec":
		return labExec(args[1:])
	case "kubectl":
		return labKubectl(args[1:])
	case "images":
		return labImages(stdout)
	case "workload":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return workload.Run(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, labUsage)
		return nil
	}
	fmt.Fprintf(stderr, "nodemesh lab: unknown command %q\n\n%s", args[0], labUsage)
	return &exitError{2}
}

// defaultStateDir is .state/lab in the repository holding the working
// directory.
func defaultStateDir() (string, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%w (run nodemesh lab from the repository, or pass --state-dir)", err)
	}
	return filepath.Join(root, ".state", "lab"), nil
}

func stateDirFlag(fs *flag.FlagSet) *string {
	return fs.String("state-dir", "", "the lab's state directory (default: .state/lab in the repository)")
}

// stateDirEnv, when set, replaces the default state directory (what
// `nodemesh lab kubectl`, whose flags are kubectl's, goes by).
const stateDirEnv = "NODEMESH_LAB_STATE_DIR"

func resolveStateDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(stateDirEnv)
	}
	if dir == "" {
		return defaultStateDir()
	}
	return filepath.Abs(dir)
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// upOptions are the flags up passes on to the daemon.
type upOptions struct {
	nodes             int
	stateDir, binDir  string
	noPolicy          bool
	agentArgs, filesF stringsFlag
}

func (o *upOptions) bind(fs *flag.FlagSet) {
	fs.IntVar(&o.nodes, "nodes", 1, "number of nodes")
	fs.StringVar(&o.binDir, "bin-dir", "", "directory of nodemesh, nodemesh-agent, nodemesh-proxy and nodemesh-controller (default: this program's)")
	fs.BoolVar(&o.noPolicy, "no-policy", false, "run the agents without the datapath: Gateway API only, no network policy enforced")
	fs.Var(&o.agentArgs, "agent-arg", "extra nodemesh-agent flag for every node (repeatable), the chart's agent.extraArgs (after the chart's flags), e.g. --agent-arg=--datapath-cgroup={cgroup}; "+
		"{node}, {ip}, {podCIDR}, {netns}, {netnsPath}, {stateDir}, {pinDir} and {cgroup} (the node's Pod cgroup) are replaced per node")
}

func labUp(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lab up", flag.ContinueOnError)
	var o upOptions
	o.bind(fs)
	state := stateDirFlag(fs)
	fs.Var(&o.filesF, "f", "manifest file or directory to apply once the lab is up (repeatable)")
	foreground := fs.Bool("foreground", false, "run the lab in this process until interrupted, instead of in the background")
	wait := fs.Duration("wait", 3*time.Minute, "how long to wait for the applied workloads' Pods to be ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("lab up needs root: it creates network namespaces (try sudo)")
	}
	start := time.Now()
	var err error
	if o.stateDir, err = resolveStateDir(*state); err != nil {
		return err
	}
	if s, err := lab.LoadState(o.stateDir); err == nil {
		return fmt.Errorf("a lab is already running (process %d, %s); `nodemesh lab down` first", s.PID, o.stateDir)
	}
	if o.binDir == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		o.binDir = filepath.Dir(self)
	}
	// What a lab killed with -9 left behind.
	if err := lab.Down(o.stateDir, 10*time.Second); err != nil {
		fmt.Fprintln(stderr, "removing leftovers of an earlier lab:", err)
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "building Kubernetes (cached in conformance/.cache) …")
	t0 := time.Now()
	if _, err := controlplane.Build(context.Background(), root, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "Kubernetes ready in %s; starting a %d-node lab …\n", time.Since(t0).Round(time.Second), o.nodes)
	if *foreground {
		return runLab(o, func(l *lab.Lab) error {
			return afterUp(l.State(), o.filesF, *wait, start, stdout, stderr)
		})
	}
	if err := spawnDaemon(o); err != nil {
		return err
	}
	s, err := lab.LoadState(o.stateDir)
	if err != nil {
		return err
	}
	return afterUp(*s, o.filesF, *wait, start, stdout, stderr)
}

// afterUp applies the manifests, waits for their Pods and prints how to
// use the lab.
func afterUp(s lab.State, files []string, wait time.Duration, start time.Time, stdout, stderr io.Writer) error {
	upTook := time.Since(start)
	var applyErr error
	if len(files) > 0 {
		cfg, err := s.RESTConfig()
		if err != nil {
			return err
		}
		ctx := context.Background()
		applyErr = lab.ApplyPaths(ctx, cfg, files)
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return err
		}
		t0 := time.Now()
		pods, err := lab.WaitSettled(ctx, client, wait)
		if err == nil {
			// Ready Pods are reachable by their Services only once every
			// node's kube-proxy has programmed them.
			err = lab.WaitServices(ctx, s, client, max(wait-time.Since(t0), 10*time.Second))
		}
		if err == nil {
			// And the applied policies hold once every node enforces them:
			// a request right after up must meet them.
			err = lab.WaitPolicies(ctx, s, client, dyn, max(wait-time.Since(t0), 10*time.Second))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POD\tNODE\tIP\tSTATUS")
		for _, p := range pods {
			fmt.Fprintln(tw, p.String())
		}
		tw.Flush()
		applyErr = errors.Join(applyErr, err)
	}
	fmt.Fprintf(stdout, "\nlab is up: %d node(s) in %s (total %s)\n", len(s.Nodes), upTook.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	for _, n := range s.Nodes {
		fmt.Fprintf(stdout, "  %s  %s  pods %s  netns %s\n", n.Name, n.IP, n.PodCIDR, n.Netns)
	}
	fmt.Fprintf(stdout, "state:      %s\nkubeconfig: %s\n", s.Dir, s.Kubeconfig)
	fmt.Fprintf(stdout, "try:        nodemesh lab kubectl get pods -o wide\n            nodemesh lab exec POD -- curl -s http://SERVICE.NAMESPACE.svc.cluster.local\n")
	if len(s.Nodes) > 0 {
		fmt.Fprintf(stdout, "            nodemesh status --socket %s\n", filepath.Join(s.Nodes[0].StateDir, "agent.sock"))
		if s.Nodes[0].PinDir != "" {
			fmt.Fprintf(stdout, "            nodemesh status --nodes --kubeconfig %s\n", s.Kubeconfig)
		}
	}
	fmt.Fprintf(stdout, "stop:       nodemesh lab down\n")
	if applyErr != nil {
		fmt.Fprintf(stderr, "\nthe lab is up, but not everything applied is running:\n%v\n", applyErr)
		return &exitError{1}
	}
	return nil
}

// runLab starts the lab in this process, calls ready, and keeps it up
// until SIGINT or SIGTERM.
func runLab(o upOptions, ready func(*lab.Lab) error) error {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return err
	}
	bins, ok := controlplane.Find(root)
	if !ok {
		return errors.New("the Kubernetes binaries are not built (nodemesh lab up builds them)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts := lab.Options{Dir: o.stateDir, Nodes: o.nodes, Binaries: bins, BinDir: o.binDir, NoPolicy: o.noPolicy, Log: log}
	if len(o.agentArgs) > 0 {
		extra := append([]string(nil), o.agentArgs...)
		opts.AgentArgs = func(n lab.Node) []string { return expandAgentArgs(extra, n) }
	}
	l, err := lab.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := ready(l); err != nil {
		var ee *exitError
		if !errors.As(err, &ee) {
			return err
		}
	}
	<-ctx.Done()
	log.Info("stopping the lab")
	return l.Close()
}

// expandAgentArgs fills in the per-node placeholders of --agent-arg:
// {node}, {ip}, {podCIDR}, {netns} (name), {netnsPath}, {stateDir} and
// {pinDir} and {cgroup}, so one flag serves every node
// (--agent-arg=--datapath-cgroup={cgroup}).
func expandAgentArgs(args []string, n lab.Node) []string {
	r := strings.NewReplacer("{node}", n.Name, "{ip}", n.IP.String(), "{podCIDR}", n.PodCIDR.String(),
		"{netnsPath}", n.NetnsPath, "{netns}", n.Netns, "{stateDir}", n.StateDir, "{pinDir}", n.PinDir, "{cgroup}", n.Cgroup)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = r.Replace(a)
	}
	return out
}

// spawnDaemon starts `nodemesh-lab daemon` detached (own session, output
// in <state>/lab.log) and waits until it reports the lab up or failed.
func spawnDaemon(o upOptions) error {
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(o.stateDir, "lab.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"daemon", "--state-dir=" + o.stateDir, "--bin-dir=" + o.binDir, fmt.Sprintf("--nodes=%d", o.nodes)}
	if o.noPolicy {
		args = append(args, "--no-policy")
	}
	for _, a := range o.agentArgs {
		args = append(args, "--agent-arg="+a)
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting the lab process: %w", err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "ok" {
		return nil
	}
	select {
	case err := <-exited:
		if line == "" {
			line = fmt.Sprint(err)
		}
	case <-time.After(30 * time.Second):
	}
	return fmt.Errorf("the lab did not come up: %s (log: %s)", line, logPath)
}

// labDaemon is the background process of `lab up`: it runs the lab and
// reports on file descriptor 3 ("ok", or the error) once it is up.
func labDaemon(args []string) error {
	fs := flag.NewFlagSet("lab daemon", flag.ContinueOnError)
	var o upOptions
	o.bind(fs)
	fs.StringVar(&o.stateDir, "state-dir", "", "state directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The lab's own children must not hold the report pipe open: up
	// waits for its end to learn that this process died.
	syscall.CloseOnExec(3)
	report := os.NewFile(3, "report")
	err := runLab(o, func(*lab.Lab) error {
		_, err := fmt.Fprintln(report, "ok")
		report.Close()
		return err
	})
	if err != nil && report != nil {
		fmt.Fprintln(report, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return err
}

func labDown(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("lab down", flag.ContinueOnError)
	state := stateDirFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := resolveStateDir(*state)
	if err != nil {
		return err
	}
	_, running := lab.LoadState(dir)
	if err := lab.Down(dir, time.Minute); err != nil {
		return err
	}
	if running == nil {
		fmt.Fprintln(stdout, "lab stopped and removed")
	} else {
		fmt.Fprintln(stdout, "no lab was running; leftovers removed")
	}
	return nil
}

func labExec(args []string) error {
	fs := flag.NewFlagSet("lab exec", flag.ContinueOnError)
	ns := fs.String("n", "default", "the Pod's namespace")
	container := fs.String("c", "", "container (all of a Pod's containers share its network namespace)")
	state := stateDirFlag(fs)
	// The Pod name may come before the flags, as with kubectl.
	var pod string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pod, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if pod == "" && len(rest) > 0 && rest[0] != "--" {
		pod, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if pod == "" || len(rest) == 0 {
		return errors.New("usage: nodemesh lab exec POD [-n NAMESPACE] [-c CONTAINER] -- COMMAND [ARG...]")
	}
	dir, err := resolveStateDir(*state)
	if err != nil {
		return err
	}
	s, err := lab.LoadState(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	argv, err := s.ExecArgv(ctx, *ns, pod, *container, rest)
	if err != nil {
		return err
	}
	return execReplace(argv)
}

func labKubectl(args []string) error {
	dir, err := resolveStateDir("")
	if err != nil {
		return err
	}
	s, err := lab.LoadState(dir)
	if err != nil {
		return err
	}
	return execReplace(append([]string{s.Kubectl, "--kubeconfig=" + s.Kubeconfig}, args...))
}

// execReplace replaces this process with argv: standard streams, signals
// and the exit status are the command's own.
func execReplace(argv []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

func labImages(stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tWORKLOAD\tDEFAULT PORTS")
	fmt.Fprintln(tw, "registry.k8s.io/gateway-api/echo-basic\t(the conformance suite's echo-basic)\t3000")
	for _, im := range workload.Images {
		ports := "-"
		if len(im.Ports) > 0 {
			ports = strings.Trim(fmt.Sprint(im.Ports), "[]")
		}
		w := im.Workload
		var cmds []string
		for name, args := range im.Commands {
			cmds = append(cmds, name+" = "+strings.Join(args, " "))
		}
		if len(cmds) > 0 {
			sort.Strings(cmds)
			w += " (exec: " + strings.Join(cmds, ", ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", im.Repository, w, ports)
	}
	fmt.Fprintln(tw, "(any image)\ta command naming a local program runs as is\t")
	return tw.Flush()
}
