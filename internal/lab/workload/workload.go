package workload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PortsEnv carries the container's declared TCP ports (see node.PortsEnv).
const PortsEnv = "NODEMESH_CONTAINER_PORTS"

// Image maps one image repository (tag and digest stripped, Docker Hub
// names in full) to a workload and the ports it listens on when the
// container declares none.
type Image struct {
	Repository string
	Workload   string
	Ports      []int
	// Commands are the image's other programs, for exec: name → the
	// workload (and its leading args) that plays it.
	Commands map[string][]string
}

// Images is the mapping `nodemesh lab` runs with.
var Images = []Image{
	{"nodemesh.io/lab/echo", "echo", []int{8080}, nil},
	{"docker.io/ealen/echo-server", "echo", []int{80}, nil},
	{"docker.io/jmalloc/echo-server", "echo", []int{8080}, nil},
	{"docker.io/kicbase/echo-server", "echo", []int{8080}, nil},
	{"registry.k8s.io/echoserver", "echo", []int{8080}, nil},
	// The staging name of the Gateway API's echo-basic, which Cilium's
	// Ingress path-type example runs: HTTP on port 3000. The released
	// name (registry.k8s.io/gateway-api/echo-basic) is not listed: the
	// lab runs the real echo-basic for it, which the conformance suite
	// reads (namespace, Pod, headers) and which must not be replaced.
	{"gcr.io/k8s-staging-gateway-api/echo-basic", "echo", []int{3000}, nil},
	// Cilium's demos use json-mock as the ships' image: a small HTTP
	// server on port 80 that the demos only ever exec curl in.
	{"quay.io/cilium/json-mock", "echo", []int{80}, nil},
	{"docker.io/cilium/json-mock", "echo", []int{80}, nil},
	{"nodemesh.io/lab/deathstar", "deathstar", []int{80}, nil},
	{"docker.io/cilium/starwars", "deathstar", []int{80}, nil},
	{"quay.io/cilium/starwars", "deathstar", []int{80}, nil},
	{"nodemesh.io/lab/grpc-echo", "grpc-echo", []int{50051}, nil},
	{"nodemesh.io/lab/kafka", "kafka", []int{9092}, nil},
	{"docker.io/apache/kafka", "kafka", []int{9092}, nil},
	{"docker.io/bitnami/kafka", "kafka", []int{9092}, nil},
	{"nodemesh.io/lab/idle", "idle", nil, nil},
	{"docker.io/library/busybox", "idle", nil, nil},
	{"docker.io/library/alpine", "idle", nil, nil},
	{"docker.io/library/debian", "idle", nil, nil},
	{"docker.io/library/ubuntu", "idle", nil, nil},
	{"docker.io/curlimages/curl", "idle", nil, nil},
	{"quay.io/curl/curl", "idle", nil, nil},
	{"docker.io/nicolaka/netshoot", "idle", nil, nil},
	{"docker.io/tgraf/netperf", "idle", nil, nil},
	{"registry.k8s.io/pause", "idle", nil, nil},
	// The Gateway API mesh conformance suite's echo: server by default,
	// and the "client" it execs in the Pod (meshecho.go). No default
	// ports here: the workload reads its own --port/--grpc/--tcp flags.
	{"registry.k8s.io/gateway-api/echo-advanced", "mesh-echo", nil, map[string][]string{"client": {"mesh-client"}}},
}

// Args are what the node runner passes a workload for image im, after
// the workload's name: its default ports.
func (im Image) Args() []string {
	out := []string{im.Workload}
	for _, p := range im.Ports {
		out = append(out, "--port="+strconv.Itoa(p))
	}
	return out
}

// workloads by name.
var workloads = map[string]func(ctx context.Context, ports []int, args []string, out io.Writer) error{
	"echo":        runEcho,
	"deathstar":   runDeathstar,
	"grpc-echo":   runGRPCEcho,
	"kafka":       runKafka,
	"idle":        runIdle,
	"mesh-echo":   runMeshEcho,
	"mesh-client": runMeshClient,
}

// Names lists the workloads.
func Names() []string {
	var out []string
	for n := range workloads {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Run runs workload args[0] with the remaining args until ctx ends.
// --port (repeatable) gives the default ports; NODEMESH_CONTAINER_PORTS,
// when set, replaces them.
func Run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("naming a workload: one of %s", strings.Join(Names(), ", "))
	}
	run, ok := workloads[args[0]]
	if !ok {
		return fmt.Errorf("unknown workload %q: one of %s", args[0], strings.Join(Names(), ", "))
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(out)
	var ports portList
	fs.Var(&ports, "port", "TCP port to listen on (repeatable); "+PortsEnv+" overrides")
	// Everything after the known flags is the workload's own.
	known, rest := splitPortFlags(args[1:])
	if err := fs.Parse(known); err != nil {
		return err
	}
	if env := os.Getenv(PortsEnv); env != "" {
		ports = nil
		for _, s := range strings.Split(env, ",") {
			if err := ports.Set(s); err != nil {
				return fmt.Errorf("reading %s: %w", PortsEnv, err)
			}
		}
	}
	return run(ctx, ports, rest, out)
}

// splitPortFlags separates --port flags (the runner's) from the rest
// (the container's args, for the workload itself).
func splitPortFlags(args []string) (ports, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "--port=") || strings.HasPrefix(a, "-port="):
			ports = append(ports, a)
		case (a == "--port" || a == "-port") && i+1 < len(args):
			ports = append(ports, a, args[i+1])
			i++
		default:
			rest = append(rest, a)
		}
	}
	return ports, rest
}

type portList []int

func (p *portList) String() string { return fmt.Sprint([]int(*p)) }

func (p *portList) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1-65535", s)
	}
	*p = append(*p, n)
	return nil
}

// listen opens a TCP listener on every address for each port.
func listen(ports []int) ([]net.Listener, error) {
	if len(ports) == 0 {
		return nil, errors.New("no port to listen on")
	}
	var ls []net.Listener
	for _, p := range ports {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			for _, x := range ls {
				x.Close()
			}
			return nil, fmt.Errorf("listening on port %d: %w", p, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// podIPv4 is the first non-loopback IPv4 address of this namespace.
func podIPv4() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.To4(), nil
		}
	}
	return nil, errors.New("no IPv4 address besides loopback")
}

func runIdle(ctx context.Context, _ []int, _ []string, out io.Writer) error {
	fmt.Fprintln(out, "idle: waiting to be stopped")
	<-ctx.Done()
	return nil
}

// shutdownGrace bounds how long servers drain on SIGTERM.
const shutdownGrace = 5 * time.Second
