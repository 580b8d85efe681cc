// Command starwars is the mesh demo behind `make run-mesh`: Cilium's Star
// Wars scenario (FEATURES.md AT-POL-01) on one machine, with the project's
// real binaries. run.sh checks the prerequisites and runs it from the
// repository root.
//
// # What it owns
//
// The demo's lifecycle and its script. It builds a datapath/testbed bed —
// a node network namespace and one namespace per Pod (deathstar-1,
// deathstar-2, tiefighter, xwing) joined to it by veth pairs — serves the
// deathstar's two endpoints inside the deathstar namespaces, writes the
// Pods into the agent's config directory with the bed's addresses, and
// starts nodemesh-agent (--datapath on the node namespace) and, inside the
// node namespace, nodemesh-proxy. Then it walks through the scenario,
// printing every command as a user would type it and what came back:
// curl from the ships with `ip netns exec`, `cp` of Cilium's policy files
// into the watched directory, `nodemesh status` and `nodemesh flows`.
//
// # Invariants
//
//   - Nothing is added to the machine's own network namespace: the agent
//     runs there but manages the node namespace (--datapath-netns, and
//     --node-ips so it never reads the machine's addresses); the
//     datapath's attachments and routing rules, and the proxy's listeners,
//     live inside the bed. The pins go to a private bpf filesystem under
//     the temporary directory, not /sys/fs/bpf.
//   - Two demos never share a state directory: the second refuses to
//     start while the first holds <state-dir>.lock.
//   - Everything is removed on the way out, normal or not (error, Ctrl-C,
//     SIGTERM): proxy and agent stopped, the datapath uninstalled
//     (datapath.Uninstall: programs, routing rules, pins), namespaces
//     deleted, the bpf filesystem unmounted. The state directory keeps the
//     logs and the config directory of the last run.
//   - A run killed with -9 leaves namespaces and the bpf filesystem, all
//     named after its process id; the next run's testbed.Sweep removes
//     them once that process is gone. The agent and proxy die with the
//     demo (parent-death signal), and run in their own process group so
//     a Ctrl-C reaches only the demo, which stops them in order.
//   - The demo moves on only once the node enforces a change: it reads the
//     agent's status (what `nodemesh status` shows) until the proxy
//     acknowledged everything published, no datapath write is pending or
//     failed and the expected policies are enforced. The status does not
//     say which generation the datapath holds, so two reads 200 ms apart
//     must agree (see settle).
//   - With --check every outcome is compared with Cilium's demo and any
//     difference makes the exit status non-zero; without it, the same
//     differences are listed and everything keeps running until Ctrl-C.
//
// # Decisions where the task was silent
//
//   - No Service object: the datapath enforces policy and redirects to the
//     proxy, but does no Service load balancing (kube-proxy's job, absent
//     here), so a deathstar Service would change nothing. Ships address a
//     deathstar Pod directly; the second replica shows that the policy
//     follows labels, not addresses.
//   - "xwing cannot connect" means curl's connect timeout (exit 28): the
//     SYN is dropped, as in Cilium's demo where the request hangs. A reset
//     would be a different outcome and fails the check.
//   - Applying the L7 policy replaces rule1.yaml in the watched directory,
//     as `kubectl apply` of the same policy name replaces the object;
//     two files defining rule1 would be a conflict.
//   - IPv4 only in the walkthrough; every Pod also has an IPv6 address
//     (listed in http-sw-app.yaml) and the same policy applies to it.
package main
