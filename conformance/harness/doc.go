// The harness is what `make conformance` runs: the official Gateway API
// conformance suite (sigs.k8s.io/gateway-api/conformance v1.6.3, profiles
// GATEWAY-HTTP, GATEWAY-GRPC, GATEWAY-TLS, GATEWAY-TCP and GATEWAY-UDP by
// default, plus MESH-HTTP with -channel=experimental; `make
// conformance-mesh` runs MESH-HTTP and MESH-GRPC, -profiles picks any)
// against nodemesh in Kubernetes mode, on a real kube-apiserver, entirely
// on this machine.
//
// Steps:
//  1. build (or reuse from conformance/.cache) etcd, kube-apiserver,
//     kube-controller-manager, kube-proxy, kubectl, echo-basic and the
//     compiled suite from the nested module conformance/kube (package
//     internal/lab/controlplane);
//  2. start a one-node lab (package internal/lab, the same harness as
//     `nodemesh lab` and the multi-node tests; it first sweeps what crashed
//     runs left): the control plane in its own network namespace, the node
//     with kube-proxy, nodemesh-agent (Kubernetes mode; with the datapath
//     when mesh profiles run, as GAMMA steers Services' connections
//     through it and tells consumer routes' clients apart by the Pods it
//     watches; without it otherwise) and nodemesh-proxy in another, nodemesh-controller giving each Gateway a LoadBalancer
//     Service (what users run), the lab's load balancer giving those
//     Services addresses from the loopback pool 127.0.50.0/24 (the node
//     namespace's loopback, where the proxy listens; Ingress addresses
//     come from the controller's own 127.0.51.0/24), Pods as processes in namespaces of their own
//     behind veths (10.244.1.0/24), the Gateway API CRDs of the chosen
//     channel (standard by default, -channel=experimental for the other)
//     and nodemesh's own CRDs. Images run as the lab maps them: echo-basic
//     is the conformance suite's own backend; echo-advanced, the mesh
//     tests' echo, runs as the lab's mesh-echo workload, and its
//     "client" command, which the suite runs through exec (API server →
//     the lab kubelet's /exec, inside the Pod's network namespace), as
//     mesh-client (package internal/lab/workload, meshecho.go, says what
//     of the upstream image they reproduce); the coredns image of the base
//     manifests runs as a small DNS stand-in built into this binary
//     (dns-standin; the backend of the UDPRoute tests), which never
//     forwards;
//  3. create the GatewayClass "nodemesh", wait for the controller to
//     accept it (with the mesh profiles, also the XMesh "nodemesh",
//     passed as -mesh-name: the suite reads mesh features only from an
//     XMesh, a CRD of the experimental channel alone, which is why the
//     mesh profiles run with -channel=experimental and not twice), then
//     run the suite inside the node namespace, so every
//     address the run uses (the API server, the Gateway addresses, the
//     Pods) exists only in namespaces the run created. Supported features
//     are inferred from the GatewayClass (and XMesh) status, so the
//     report claims exactly what the controller advertises;
//  4. write the reports (report.go): the suite writes one for every
//     profile of the run (it runs every test whose features are claimed,
//     whatever the profiles, so one run covers gateway and mesh
//     profiles), which the harness splits: the GATEWAY-* profiles into
//     conformance/reports/gateway-api-v1.6.3-nodemesh-report.yaml, or
//     gateway-api-v1.6.3-nodemesh-experimental-report.yaml with
//     -channel=experimental (the controller claims the features whose
//     fields only experimental CRDs carry, such as HTTPRoute retries, only
//     with those CRDs installed, so each channel has its report; `make
//     conformance` runs both), the MESH-* ones into
//     gateway-api-v1.6.3-nodemesh-mesh-report.yaml (-mesh-report). A mesh
//     profile left out of the run has its own tests skipped (skipped in
//     run.go: MESH-GRPC's test needs no feature MESH-HTTP does not claim,
//     so the suite would otherwise run it for a profile the run does not
//     report). Then a summary, and close the lab: processes (SIGTERM, then SIGKILL),
//     whatever still runs in the lab's namespaces, the namespaces (and with
//     them every veth and address), and the run's state directory under
//     .state/conformance (kept when the run fails, for its logs).
//
// -event-loops N runs the proxy with N event loops (the chart's
// proxy.eventLoops, nodemesh-proxy --event-loops; 0: a goroutine per
// connection). Without it the chart's default applies (auto: one loop per
// CPU). Its reports go only where -report and -mesh-report say: the
// reports in conformance/reports are those of the proxy as it runs by
// default.
//
// Every child is started with Pdeathsig, so killing the harness kills the
// control plane and the Pods too; the next run's sweep removes the
// namespaces and anything left running in them.
package main
