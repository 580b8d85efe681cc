package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/api"
	"github.com/nodemesh/nodemesh/conformance/kubeenv"
	"github.com/nodemesh/nodemesh/conformance/node"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/gateway"
)

const (
	// gatewayClass is the class the suite runs against.
	gatewayClass = "nodemesh"
	// nodeName is the one node the local node runner registers.
	nodeName = "nodemesh-conformance-node"
	// addressPool is where Gateways get their addresses: loopback of the
	// run's node namespace, so the suite reaches them and nothing else can.
	addressPool = "127.0.50.0/24"
	// usableAddress is in the pool and never assigned dynamically before
	// GatewayStaticAddresses asks for it (the pool hands out from .1 up);
	// unusableAddress is outside the pool (TEST-NET-1, never contacted:
	// the controller refuses to assign it).
	usableAddress   = "127.0.50.250"
	unusableAddress = "192.0.2.1"
)

func run(ctx context.Context, log *slog.Logger, o options) error {
	root, err := kubeenv.RepoRoot()
	if err != nil {
		return err
	}
	// Leftovers of crashed runs (network namespaces whose creator is gone).
	if err := testbed.Sweep(); err != nil {
		log.Warn("sweeping stale network namespaces", "err", err)
	}
	binDir := abs(root, o.binDir)
	for _, b := range []string{"nodemesh-agent", "nodemesh-proxy", "nodemesh-controller"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("finding %s in %s (run `make build` first): %w", b, binDir, err)
		}
	}
	log.Info("building Kubernetes components and the conformance suite (cached)")
	t0 := time.Now()
	bins, err := kubeenv.Build(ctx, root, os.Stderr)
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

	bed, err := testbed.Create(testbed.Config{})
	if err != nil {
		return fmt.Errorf("creating the node network namespace: %w", err)
	}
	defer func() {
		if err := bed.Close(); err != nil {
			log.Warn("removing network namespaces", "err", err)
		}
	}()
	inNode := func(name string, args ...string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", bed.Node.Name, name}, args...)...)
	}

	log.Info("starting etcd, kube-apiserver and kube-controller-manager", "netns", bed.Node.Name)
	cluster, err := kubeenv.Start(ctx, kubeenv.Options{
		Binaries: bins, Dir: filepath.Join(state, "cluster"), ControllerManager: true,
		Command: inNode, Dial: bed.Node.Dial,
	})
	if err != nil {
		keep = true
		return err
	}
	defer cluster.Stop()
	crds, err := bins.GatewayCRDs(o.channel)
	if err != nil {
		return err
	}
	if err := kubeenv.Apply(ctx, cluster.Config, crds); err != nil {
		return fmt.Errorf("installing Gateway API CRDs: %w", err)
	}
	if err := kubeenv.Apply(ctx, cluster.Config, api.CRDManifests()); err != nil {
		return fmt.Errorf("installing nodemesh CRDs: %w", err)
	}
	class := fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: %s\nspec:\n  controllerName: %s\n", gatewayClass, gateway.ControllerName)
	if err := kubeenv.Apply(ctx, cluster.Config, []byte(class)); err != nil {
		return fmt.Errorf("creating GatewayClass: %w", err)
	}

	core, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		return fmt.Errorf("creating Kubernetes client: %w", err)
	}
	runner, err := node.New(node.Config{
		Client: core, Name: nodeName, Bed: bed, Dir: filepath.Join(state, "pods"), Log: log.With("component", "node"),
		Images: []node.Image{
			{Repository: "registry.k8s.io/gateway-api/echo-basic", Program: bins.EchoBasic},
			{Repository: "registry.k8s.io/coredns/coredns", Program: self, Args: []string{"dns-standin"}},
		},
	})
	if err != nil {
		return err
	}
	rctx, stopRunner := context.WithCancel(ctx)
	runnerDone := make(chan error, 1)
	go func() { runnerDone <- runner.Run(rctx) }()
	// Pods go before the cluster, so their deletion is not left half-done.
	defer func() {
		stopRunner()
		<-runnerDone
	}()

	kc := cluster.Kubeconfig
	agentState := filepath.Join(state, "agent")
	if _, err := cluster.Exec("nodemesh-controller", nil, filepath.Join(binDir, "nodemesh-controller"),
		"--kubeconfig="+kc, "--address-pool="+addressPool); err != nil {
		return err
	}
	if _, err := cluster.Exec("nodemesh-agent", nil, filepath.Join(binDir, "nodemesh-agent"),
		"--kubernetes", "--kubeconfig="+kc, "--node-name="+nodeName, "--state-dir="+agentState); err != nil {
		return err
	}
	if _, err := cluster.Exec("nodemesh-proxy", nil, filepath.Join(binDir, "nodemesh-proxy"),
		"--xds-address=unix://"+filepath.Join(agentState, "xds.sock"), "--node-id="+nodeName, "--admin-address=127.0.0.1:9901"); err != nil {
		return err
	}

	// The suite reads the features to test from the GatewayClass once, at
	// start: wait for the controller to have accepted it.
	if err := waitClassAccepted(ctx, cluster); err != nil {
		keep = true
		return err
	}

	report := abs(root, o.report)
	args := []string{
		"-test.v", "-test.timeout=" + (o.timeout - 2*time.Minute).String(),
		"-gateway-class=" + gatewayClass,
		"-conformance-profiles=GATEWAY-HTTP",
		"-organization=nodemesh", "-project=nodemesh", "-url=https://github.com/nodemesh/nodemesh",
		"-version=" + version(root), "-contact=https://github.com/nodemesh/nodemesh/issues",
		"-usable-address=" + usableAddress, "-unusable-address=" + unusableAddress,
		// The whole cluster is thrown away afterwards.
		"-cleanup-base-resources=false",
	}
	if o.runTest != "" {
		args = append(args, "-run-test="+o.runTest)
	} else {
		if err := os.MkdirAll(filepath.Dir(report), 0o755); err != nil {
			return fmt.Errorf("creating report directory: %w", err)
		}
		args = append(args, "-report-output="+report)
	}
	if o.skipTests != "" {
		args = append(args, "-skip-tests="+o.skipTests)
	}
	log.Info("running the Gateway API conformance suite", "profile", "GATEWAY-HTTP", "logs", cluster.LogDir())
	suiteLog, err := os.Create(filepath.Join(cluster.LogDir(), "conformance.log"))
	if err != nil {
		return fmt.Errorf("creating suite log: %w", err)
	}
	defer suiteLog.Close()
	cmd := inNode(bins.Suite, args...)
	cmd.Dir = filepath.Dir(bins.Suite)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kc)
	cmd.Stdout = io.MultiWriter(os.Stdout, suiteLog)
	cmd.Stderr = cmd.Stdout
	suiteErr := runContext(ctx, cmd)
	if o.runTest == "" {
		if err := summarize(report, os.Stdout); err != nil {
			log.Warn("summarizing report", "err", err)
		}
	}
	if suiteErr != nil {
		keep = true
		return &suiteFailed{fmt.Errorf("conformance suite: %w (logs in %s)", suiteErr, cluster.LogDir())}
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
func waitClassAccepted(ctx context.Context, cluster *kubeenv.Cluster) error {
	gw, err := gwclient.NewForConfig(cluster.Config)
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
