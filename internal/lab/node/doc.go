// Package node is the lab's kubelet and CNI: enough of both that
// Deployments, StatefulSets, Services and EndpointSlices behave as in a
// cluster, without a container runtime. One Runner runs per lab node.
//
// What it does:
//   - registers its Node (Ready, with the node's lab address as
//     InternalIP, spec.podCIDR, and the labels kubernetes.io/hostname,
//     kubernetes.io/os and kubernetes.io/arch plus any given) and keeps it
//     fresh with a heartbeat;
//   - runs each container of each Pod bound to it (spec.nodeName; binding
//     is the lab scheduler's job) as a local process inside the Pod's own
//     network namespace (package network: a veth into the node namespace,
//     an address from the node's Pod CIDR), because workloads bind
//     ":<port>" on every interface and could not share one namespace;
//   - gives the Pod a resolv.conf for its dnsPolicy, pointing at the
//     cluster DNS, which every process of the Pod sees (`ip netns exec`
//     bind-mounts it over /etc/resolv.conf);
//   - reports phase, pod IP, host IP, container states, restart counts and
//     the PodScheduled/Initialized/ContainersReady/Ready conditions, and
//     records Events (Started, and a Warning naming the reason when a
//     container cannot run);
//   - keeps each container's output as CRI log records and serves them,
//     as a kubelet does, at /containerLogs on the node's address (port
//     10250, TLS, client certificates of the cluster CA only), so the
//     API server's pods/log works (logs.go), and the exec API there too,
//     so `kubectl exec` and pods/exec run a command inside the Pod's
//     network namespace and cgroup with the container's environment
//     (exec.go: SPDY, remote-command v4/v5, no TTY);
//   - stops the processes of deleted Pods (SIGTERM to the process group,
//     then SIGKILL after the grace period, then whatever is left in the
//     Pod's namespace) and removes the Pod object, as the kubelet does.
//
// Images are not pulled: Config.Images maps an image repository (the
// reference without tag or digest, Docker Hub names spelt in full, see
// Repository) to a local program — the lab's built-in workloads, or the
// conformance suite's echo-basic built from its Go module. A container
// whose command names a program on this machine (found like a shell finds
// it, on PATH or by path) runs that program with its args, whatever the
// image, when Config.LocalCommands allows it. A container with neither
// waits with reason ImageNotRunnable and a message naming the image, and
// a Warning Event says the same; a Pod that uses what the runner does not
// emulate (init containers, host networking, probes other than tcpSocket
// and httpGet) waits with reason Unsupported naming the field. Such a Pod
// never becomes Ready rather than pretending.
//
// Decisions:
//   - containers run as root with the machine's file system: a lab Pod's
//     command is a local program, so apply only manifests you trust;
//   - environment: value, and valueFrom fieldRef (metadata.name,
//     metadata.namespace, metadata.uid, spec.nodeName,
//     spec.serviceAccountName, status.podIP, status.hostIP), secretKeyRef
//     and configMapKeyRef; Service link variables are not injected. A
//     container that declares TCP ports also gets NODEMESH_CONTAINER_PORTS
//     (comma-separated), on which built-in workloads listen;
//   - volumes: secret and configMap volumes (with items) are written to a
//     per-pod directory; a container sees them through its arguments and
//     environment, where every value starting with a volume's mountPath is
//     rewritten to that directory (processes share the host's file system,
//     so paths like /etc/secret-volume cannot be mounted for real without
//     a container runtime); emptyDir gets an empty directory; projected
//     volumes get a bound service account token (TokenRequest), ConfigMap
//     and Secret items and the Pod's namespace and name;
//   - DNS: ClusterFirst (the default) searches <namespace>.svc.<domain>,
//     svc.<domain> and <domain> with ndots:5, like the kubelet; None uses
//     spec.dnsConfig alone; Default would be the node's resolver, and lab
//     nodes have none, so such a Pod resolves nothing;
//   - readiness: a container is ready while its process runs and its
//     readinessProbe (tcpSocket or httpGet, dialled inside the pod's
//     namespace) passes; without a probe, as soon as it runs;
//   - restarts follow restartPolicy with the kubelet's doubling back-off
//     (10s up to 5 minutes).
package node
