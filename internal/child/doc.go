// Package child runs the real programs the test harnesses start (etcd
// and the Kubernetes control plane in internal/lab/controlplane, SPIRE in
// internal/spiretest) as children of the test process.
//
// Start appends a child's output to a log file and puts it in a process
// group of its own, so stopping it never signals the test process, with
// SIGKILL as its parent-death signal, so a killed test leaves nothing
// running. Stop is SIGTERM, then SIGKILL after a grace period; Done
// closes when the child has been reaped, with its exit error in Err.
// Readiness differs by program (a Unix socket, an HTTP health endpoint)
// and stays with the harness.
//
// It uses the standard library only.
package child
