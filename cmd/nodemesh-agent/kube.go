package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway/nodereport"
	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
)

// runKubernetes wires the Kubernetes provider and the node status reporter
// to the agent. It returns once both are started; their errors go to errc.
func runKubernetes(ctx context.Context, log *slog.Logger, a *agent.Agent, kubeconfig, node string, controller gwv1.GatewayController, errc chan<- error) error {
	clients, err := kube.Connect(kubeconfig)
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
	core, gw, dyn := clients.Core, clients.Gateway, clients.Dynamic
	prov := kube.New(core, gw, kube.WithLogger(log))
	go func() {
		errc <- prov.Watch(ctx, func(s *input.Snapshot) {
			_ = a.Apply(ctx, s, nil) // failures are logged and shown in status
		})
	}()
	status := func() nodereport.AgentStatus {
		st := a.Status()
		return nodereport.AgentStatus{Gateways: st.Gateways, Proxies: st.Proxies, PublishError: st.PublishError}
	}
	rep := nodereport.NewReporter(dyn, core, node, controller, status, nodereport.WithReporterLogger(log))
	go rep.Run(ctx)
	log.Info("reporting node proxy status", "node", node)
	return nil
}
