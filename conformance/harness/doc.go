// The harness is what `make conformance` runs: the official Gateway API
// conformance suite (sigs.k8s.io/gateway-api/conformance v1.6.3, profile
// GATEWAY-HTTP) against nodemesh in Kubernetes mode, on a real
// kube-apiserver, entirely on this machine.
//
// Steps:
//  1. sweep network namespaces left by crashed runs (datapath/testbed
//     names them "nmtb-<pid>-…"; only those whose creating process is gone
//     are removed);
//  2. build (or reuse from conformance/.cache) etcd, kube-apiserver,
//     kube-controller-manager, echo-basic and the compiled suite from the
//     nested module conformance/kube (package kubeenv);
//  3. create one test bed: a "node" network namespace. Everything else
//     runs inside it — etcd, kube-apiserver, kube-controller-manager,
//     nodemesh-controller, nodemesh-agent, nodemesh-proxy and the suite
//     itself — so every address the run uses (the API server, the Gateway
//     addresses from the loopback pool 127.0.50.0/24, the pods) exists only
//     in namespaces the run created, and no port can collide with anything
//     else on the machine;
//  4. install the Gateway API CRDs (standard channel by default,
//     -channel=experimental for the other) and nodemesh's own CRD, and the
//     GatewayClass "nodemesh";
//  5. run the local node runner (package node): one Node, pods as
//     processes, each in a workload namespace of the bed with its own
//     address (10.248.0.<n>) behind a veth pair into the node namespace;
//     the coredns image of the base manifests runs as a small DNS stand-in
//     built into this binary (dns-standin), which never forwards;
//  6. start nodemesh-controller (addresses from the loopback pool),
//     nodemesh-agent in Kubernetes mode and nodemesh-proxy on the agent's
//     xDS socket; wait for the GatewayClass to be accepted, then run the
//     suite. Supported features are inferred from the GatewayClass status,
//     so the report claims exactly what the controller advertises;
//  7. write the report YAML (default
//     conformance/reports/gateway-api-v1.6.3-nodemesh-report.yaml) and a
//     summary, then tear everything down: processes (SIGTERM, then
//     SIGKILL), the bed's namespaces (and with them every veth and
//     address), and the run's state directory under .state/conformance
//     (kept when the run fails, for its logs).
//
// Every child is started with Pdeathsig, so killing the harness kills the
// control plane and the pods too; the next run's sweep removes the
// namespaces.
package main
