// Command nodemesh is the command-line interface: offline translation of
// YAML to Envoy resources, the state of a running agent, and the local
// cluster (`nodemesh lab`, package internal/lab).
package main

import (
	"fmt"
	"os"
)

const usage = `nodemesh — sidecar-less L7 service mesh

Usage:
  nodemesh translate -f FILE|DIR [-f ...] [-o yaml|json] [--type all|listeners|routes|clusters|endpoints|secrets|ir|status]
      Translate Gateway API YAML to the Envoy resources an agent would serve (offline).
  nodemesh status [--socket PATH] [-o table|json]
      Show per-object status and what each connected proxy acknowledged or rejected.
  nodemesh status --nodes [--kubeconfig PATH]
      Kubernetes mode: every node's network policy state and which nodes have not enforced a policy yet.
  nodemesh flows [--socket PATH] [-o table|json] [--verdict V] [--protocol P] [--identity N] [--workload NS/NAME] [--since D] [--last N] [-f]
      Show the L7 flows (HTTP, gRPC, Kafka requests) the node's proxy judged
      and the datapath's L3/L4 drops and redirects (also served to hubble).
  nodemesh auth list [--socket PATH] [-o table|json]
      Show the mutual-authentication entries (with expiry) and handshake counters by reason.
  nodemesh bootstrap --node-id NODE [--xds-socket PATH] [--admin-address ADDR] [-o yaml|json] [--output-file PATH]
      Write the Envoy v3 bootstrap that connects Envoy to the node's agent (ADS over its Unix socket).
  nodemesh lab up|exec|kubectl|down|images|workload ...
      A local Kubernetes cluster with nodemesh on every node (see nodemesh lab help).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "translate":
		err = translateCmd(os.Args[2:], os.Stdout, os.Stderr)
	case "status":
		err = statusCmd(os.Args[2:], os.Stdout)
	case "flows":
		err = flowsCmd(os.Args[2:], os.Stdout)
	case "bootstrap":
		err = bootstrapCmd(os.Args[2:], os.Stdout)
	case "auth":
		err = authCmd(os.Args[2:], os.Stdout)
	case "lab":
		err = labCmd(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "nodemesh: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodemesh:", err)
		os.Exit(1)
	}
}
