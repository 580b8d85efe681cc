package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/internal/lab"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/lab/node"
)

const (
	// gatewayClass is the class the suite runs against.
	gatewayClass = "nodemesh"
	// meshName is the XMesh the suite reads the mesh features from.
	meshName = "nodemesh"
	// loadBalancerPool is where the lab's load balancer gives Gateways'
	// LoadBalancer Services their addresses: loopback of the run's node
	// namespace, so the suite reaches them and nothing else can.
	loadBalancerPool = "127.0.50.0/24"
	// addressPool is the controller's pool for Ingress addresses (the
	// suite uses none), apart from the load balancer's.
	addressPool = "127.0.51.0/24"
	// usableAddress is in the load balancer's pool and never assigned
	// dynamically before GatewayStaticAddresses asks for it (the pool
	// hands out from .1 up); unusableAddress is outside the pool
	// (TEST-NET-1, never contacted: the load balancer does not assign it).
	usableAddress   = "127.0.50.250"
	unusableAddress = "192.0.2.1"
)

func run(ctx context.Context, log *slog.Logger, o options) error {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return err
	}
	binDir := abs(root, o.binDir)
	for _, b := range []string{"nodemesh", "nodemesh-agent", "nodemesh-proxy", "nodemesh-controller"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("finding %s in %s (run `make build` first): %w", b, binDir, err)
		}
	}
	log.Info("building Kubernetes components and the conformance suite (cached)")
	t0 := time.Now()
	bins, err := controlplane.Build(ctx, root, os.Stderr)
	if err != nil {
		return err
	}
	log.Info("build ready", "took", time.Since(t0).Round(time.Second))
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locating the harness binary: %w", err)
	}

	state := filepath.Join(root, ".state", "conformance", time.Now().Format("20060102-150405"))
	if err := os.MkdirAll(state, 0o755); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	keep := o.keep
	defer func() {
		if keep {
			log.Info("state kept", "dir", state)
			return
		}
		os.RemoveAll(state)
	}()

	// Mesh features come from an XMesh (experimental CRDs only).
	mesh := strings.Contains(o.profiles, "MESH-") && o.channel == "experimental"

	// The lab sweeps what crashed runs left behind before it starts.
	log.Info("starting a one-node lab", "datapath", mesh)
	t0 = time.Now()
	l, err := lab.Start(ctx, lab.Options{
		// The Gateway profiles apply no network policy and reach the
		// proxy on Gateway addresses: their agents run without the
		// datapath, as before the lab enforced policy by default. The
		// mesh profiles need it: GAMMA steers a Service's connections to
		// the node proxy with the datapath's Service table redirect, and
		// tells consumer routes' clients apart by the Pods the agent
		// watches with it.
		Dir: filepath.Join(state, "lab"), Nodes: 1, Binaries: bins, BinDir: binDir, NoPolicy: !mesh,
		AddressPool: addressPool, LoadBalancerPool: loadBalancerPool, GatewayChannel: o.channel, Log: log.With("component", "lab"),
		Images:      []node.Image{{Repository: "registry.k8s.io/coredns/coredns", Program: self, Args: []string{"dns-standin"}}},
		ChartValues: chartValues(o),
	})
	if err != nil {
		keep = true
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			log.Warn("removing the lab", "err", err)
		}
	}()
	log.Info("lab ready", "took", time.Since(t0).Round(100*time.Millisecond), "logs", l.LogDir())
	class := fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: %s\nspec:\n  controllerName: %s\n", gatewayClass, gateway.ControllerName)
	if err := controlplane.Apply(ctx, l.Config, []byte(class)); err != nil {
		return fmt.Errorf("creating GatewayClass: %w", err)
	}
	// The suite reads the features to test from the GatewayClass once, at
	// start: wait for the controller to have accepted it.
	if err := waitClassAccepted(ctx, l.Config); err != nil {
		keep = true
		return err
	}
	// Mesh features come from the XMesh, read the same way.
	if mesh {
		xm := fmt.Sprintf("apiVersion: gateway.networking.x-k8s.io/v1alpha1\nkind: XMesh\nmetadata:\n  name: %s\nspec:\n  controllerName: %s\n", meshName, gateway.ControllerName)
		if err := controlplane.Apply(ctx, l.Config, []byte(xm)); err != nil {
			return fmt.Errorf("creating XMesh: %w", err)
		}
		if err := waitMeshAccepted(ctx, l.Config); err != nil {
			keep = true
			return err
		}
	}

	// The suite writes one report for every profile of the run; the
	// harness splits it into the gateway and the mesh report.
	suiteReport := filepath.Join(state, "report.yaml")
	args := []string{
		"-test.v", "-test.timeout=" + (o.timeout - 2*time.Minute).String(),
		"-gateway-class=" + gatewayClass,
		"-conformance-profiles=" + o.profiles,
		"-organization=nodemesh", "-project=nodemesh", "-url=https://github.com/nodemesh/nodemesh",
		"-version=" + version(root), "-contact=https://github.com/nodemesh/nodemesh/issues",
		"-usable-address=" + usableAddress, "-unusable-address=" + unusableAddress,
		// The whole cluster is thrown away afterwards.
		"-cleanup-base-resources=false",
	}
	if mesh {
		args = append(args, "-mesh-name="+meshName)
	}
	if o.runTest != "" {
		args = append(args, "-run-test="+o.runTest)
	} else {
		args = append(args, "-report-output="+suiteReport)
	}
	if skip := skipped(o); skip != "" {
		args = append(args, "-skip-tests="+skip)
	}
	log.Info("running the Gateway API conformance suite", "profiles", o.profiles, "logs", l.LogDir())
	suiteLog, err := os.Create(filepath.Join(l.LogDir(), "conformance.log"))
	if err != nil {
		return fmt.Errorf("creating suite log: %w", err)
	}
	defer suiteLog.Close()
	// The suite runs inside the node, where the proxy listens on the
	// Gateway addresses, with the lab's in-cluster kubeconfig.
	cmd := l.Network.Nodes[0].Command(context.Background(), bins.Suite, args...)
	cmd.Dir = filepath.Dir(bins.Suite)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+l.LabKubeconfig)
	cmd.Stdout = io.MultiWriter(os.Stdout, suiteLog)
	cmd.Stderr = cmd.Stdout
	suiteErr := runContext(ctx, cmd)
	if o.runTest == "" {
		reports, err := splitReport(suiteReport, abs(root, o.report), abs(root, o.meshReport))
		if err != nil {
			keep = true
			return errors.Join(suiteErr, err)
		}
		for _, r := range reports {
			if err := summarize(r, os.Stdout); err != nil {
				log.Warn("summarizing report", "err", err)
			}
		}
	}
	if suiteErr != nil {
		keep = true
		return &suiteFailed{fmt.Errorf("conformance suite: %w (logs in %s)", suiteErr, l.LogDir())}
	}
	return nil
}

// runContext runs cmd, interrupting it when ctx ends.
func runContext(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return errors.Join(ctx.Err(), errors.New("interrupted"))
	}
}

func version(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "dev"
	}
	return strings.TrimSpace(string(out))
}

// waitClassAccepted waits until the controller accepted the GatewayClass
// and listed its supported features.
func waitClassAccepted(ctx context.Context, cfg *rest.Config) error {
	gw, err := gwclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating Gateway API client: %w", err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		gc, err := gw.GatewayV1().GatewayClasses().Get(ctx, gatewayClass, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		c := meta.FindStatusCondition(gc.Status.Conditions, "Accepted")
		if c == nil || c.Status != metav1.ConditionTrue || len(gc.Status.SupportedFeatures) == 0 {
			last = fmt.Sprintf("status %+v", gc.Status)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for GatewayClass %s to be accepted (%s): %w", gatewayClass, last, err)
	}
	return nil
}

// waitMeshAccepted waits until the controller accepted the XMesh.
func waitMeshAccepted(ctx context.Context, cfg *rest.Config) error {
	gw, err := gwclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating Gateway API client: %w", err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		m, err := gw.ExperimentalV1alpha1().XMeshes().Get(ctx, meshName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if c := meta.FindStatusCondition(m.Status.Conditions, "Accepted"); c == nil || c.Status != metav1.ConditionTrue {
			last = fmt.Sprintf("status %+v", m.Status)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for XMesh %s to be accepted (%s): %w", meshName, last, err)
	}
	return nil
}

// meshProfileTests are the tests of suite v1.6.3 that only one mesh
// profile covers.
var meshProfileTests = map[string][]string{
	"MESH-GRPC": {"MeshGRPCRouteWeight"},
}

// skipped is the -skip-tests of a run: the user's, and the tests of the
// mesh profiles the run leaves out. The suite runs every test whose
// features are claimed, whatever the profiles, and MESH-GRPC's test needs
// only Mesh and GRPCRoute, which a run of MESH-HTTP claims too: the run
// would test, and fail on, a profile it does not report.
func skipped(o options) string {
	skip := slices.DeleteFunc(strings.Split(o.skipTests, ","), func(s string) bool { return s == "" })
	if !strings.Contains(o.profiles, "MESH-") {
		return strings.Join(skip, ",")
	}
	run := strings.Split(o.profiles, ",")
	for _, p := range slices.Sorted(maps.Keys(meshProfileTests)) {
		if !slices.Contains(run, p) {
			skip = append(skip, meshProfileTests[p]...)
		}
	}
	return strings.Join(skip, ",")
}

// chartValues are the chart values the run lays over the lab's: the
// proxy's event loops when asked for (-1: the chart's default).
func chartValues(o options) map[string]any {
	if o.eventLoops < 0 {
		return nil
	}
	return map[string]any{"proxy": map[string]any{"eventLoops": o.eventLoops}}
}
