// Command kube-controller-manager is the upstream controller manager built
// from its Go module. The harness runs the Deployment, ReplicaSet,
// EndpointSlice, ServiceAccount, namespace and garbage-collector controllers
// from it so conformance manifests behave as in a cluster.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
