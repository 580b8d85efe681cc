// Package workload serves the SPIFFE Workload API to the Pods of the node
// over a Unix socket, so workloads that use go-spiffe (or any SPIFFE
// client) get their SVID and trust bundle unchanged.
//
// # API
//
// FetchX509SVID streams the caller's X.509-SVID (certificate chain, PKCS#8
// key, and the trust domain's bundle) and streams again on every rotation
// or bundle change; FetchX509Bundles streams the bundle. JWT-SVIDs, JWT
// bundles, ValidateJWTSVID and WIT-SVIDs answer Unimplemented. Every call
// must carry the metadata `workload.spiffe.io: true`, as SPIRE requires (a
// request without it did not come from a Workload API client, for example
// one forged through an SSRF): otherwise InvalidArgument, before anything
// else is looked at.
//
// # Attestation
//
// A caller is identified by the process that opened the connection, never
// by anything it says:
//
//  1. On accept, the server's transport credentials read the socket's
//     SO_PEERCRED (pid, uid, gid, for logs) and SO_PEERPIDFD: a pidfd for
//     the very process that called connect(2), held by the kernel with the
//     socket, so it cannot name another process that reused the pid.
//  2. The pidfd's network namespace is opened with the pidfs ioctl
//     PIDFD_GET_NET_NAMESPACE (Linux 6.11+), which fails for an exited
//     process. On older kernels: /proc/<pid>/ns/net is opened and then the
//     pidfd is checked alive (pidfd_send_signal with signal 0); a live
//     process keeps its pid, so the file opened before the check was its
//     own. Before Linux 6.5 (no SO_PEERPIDFD) the pidfd is opened from the
//     pid right after accept, which leaves a small window in which the
//     connecting process could exit and its pid be reused; that is the one
//     residual race and only exists on those kernels.
//  3. The namespace file stays open for the connection's life, so the
//     namespace cannot be freed and its inode reused by a new Pod while the
//     connection exists: the (device, inode) pair keeps naming the same
//     namespace.
//  4. On every call, and again on every change while a stream is open, the
//     Attestor (the composition root's endpoint knowledge) maps the
//     namespace to the identity of the local Pod that owns it. A namespace
//     no Pod owns — a host process, a process in a namespace the agent does
//     not know, a connection whose process has exited — is refused with
//     PermissionDenied (or the connection is closed), logged with pid, uid
//     and namespace, and counted (Stats). Refresh makes open streams
//     re-attest after endpoint changes: a Pod that left loses its stream.
//
// Attestation looks at the namespace of the process (its thread-group
// leader) at accept time. A process able to switch network namespaces
// (CAP_SYS_ADMIN) could connect and then move; such a process can read the
// node's keys anyway and is outside the threat model.
//
// Because the pidfd carries the process across PID namespaces, the agent
// does not need the host PID namespace when the kernel has the pidfs
// ioctl; on older kernels it does (/proc).
//
// # Socket and bounds
//
// Listen creates the socket's directory (0755), replaces a stale socket
// (never another kind of file) and makes the socket connectable by every
// user (0666): file modes do not decide who gets what, attestation does.
// At most 256 connections (WithMaxConns; one more is closed at once and
// counted), 16 concurrent streams per connection, requests of at most
// 64 KiB.
package workload
