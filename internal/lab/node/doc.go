// Package node is the conformance harness's local node runner: enough of a
// kubelet (and a scheduler) that Deployments, Services and EndpointSlices
// behave as in a cluster, without a container runtime.
//
// What it does:
//   - registers one Node (Ready, with the bed's node address) and binds
//     every unscheduled Pod that asks for the default scheduler to it;
//   - runs each container of each Pod bound to it as a local process,
//     inside a network namespace of its own with its own address (a
//     workload of a datapath/testbed bed: a veth pair into the node
//     namespace, address 10.248.0.<n>), because the conformance backends
//     bind ":<port>" on every interface and could not share one namespace;
//   - reports phase, pod IP, host IP, container states, restart counts and
//     the PodScheduled/Initialized/ContainersReady/Ready conditions;
//   - stops the processes of deleted Pods (SIGTERM, then SIGKILL after the
//     grace period) and removes the Pod object, as the kubelet does.
//
// Images are not pulled: Config.Images maps an image repository (the
// reference without tag or digest) to a local program, e.g. the
// conformance suite's echo-basic built from its Go module. A container
// whose image has no mapping, or that uses what the runner does not
// emulate (command overrides, init containers, host networking, probes
// other than exec-free tcpSocket/httpGet), waits with reason
// ImageNotRunnable or Unsupported and a message saying why; its Pod never
// becomes Ready rather than pretending.
//
// Decisions:
//   - environment: value, and valueFrom fieldRef (metadata.name,
//     metadata.namespace, metadata.uid, spec.nodeName,
//     spec.serviceAccountName, status.podIP, status.hostIP), secretKeyRef
//     and configMapKeyRef; Service link variables are not injected;
//   - volumes: secret and configMap volumes (with items) are written to a
//     per-pod directory; a container sees them through its arguments and
//     environment, where every value starting with a volume's mountPath is
//     rewritten to that directory (processes share the host's file system,
//     so paths like /etc/secret-volume cannot be mounted for real without
//     a container runtime); emptyDir gets an empty directory; projected
//     volumes get a bound service account token (TokenRequest), ConfigMap
//     and Secret items and the Pod's namespace and name;
//   - readiness: a container is ready while its process runs and its
//     readinessProbe (tcpSocket or httpGet, dialled inside the pod's
//     namespace) passes; without a probe, as soon as it runs;
//   - restarts follow restartPolicy with the kubelet's doubling back-off
//     (10s up to 5 minutes).
package node
