package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/mesh/agent"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
)

// runKubernetes wires the Kubernetes provider and the node status reporter
// to the agent. It returns once both are started; their errors go to errc.
func runKubernetes(ctx context.Context, log *slog.Logger, a *agent.Agent, kubeconfig, node string, controller gwv1.GatewayController, errc chan<- error) error {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	if node == "" {
		node = os.Getenv("NODE_NAME")
	}
	if node == "" {
		if node, err = os.Hostname(); err != nil {
			return fmt.Errorf("reading host name for --node-name: %w", err)
		}
	}
	// client-go's default of 5 requests/s would make the first status pass
	// over thousands of routes take minutes.
	cfg.QPS, cfg.Burst = 50, 100
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating Kubernetes client: %w", err)
	}
	gw, err := gwclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating Gateway API client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating dynamic client: %w", err)
	}
	prov := kube.New(core, gw, kube.WithLogger(log))
	go func() {
		errc <- prov.Watch(ctx, func(s *input.Snapshot) {
			_ = a.Apply(ctx, s, nil) // failures are logged and shown in status
		})
	}()
	status := func() kube.AgentStatus {
		st := a.Status()
		return kube.AgentStatus{Gateways: st.Gateways, Proxies: st.Proxies, PublishError: st.PublishError}
	}
	rep := kube.NewReporter(dyn, core, node, controller, status, kube.WithReporterLogger(log))
	go rep.Run(ctx)
	log.Info("reporting node proxy status", "node", node)
	return nil
}

// restConfig loads --kubeconfig, else $KUBECONFIG, else the in-cluster
// service account.
func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("loading in-cluster Kubernetes config (or pass --kubeconfig): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}
