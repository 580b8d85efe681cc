// Command kubectl is the upstream Kubernetes command-line client, built
// from the same release as the lab's API server; `nodemesh lab kubectl`
// runs it against the lab.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
