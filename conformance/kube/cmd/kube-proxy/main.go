// Command kube-proxy is the upstream Kubernetes Service proxy built from
// its Go module. The lab runs one per node, inside the node's network
// namespace, so ClusterIP traffic is translated the way a cluster's own
// kube-proxy does it and nodemesh runs beside it.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() { os.Exit(cli.Run(app.NewProxyCommand())) }
