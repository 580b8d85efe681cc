// Package spiretest runs real SPIRE (spire-server and spire-agent) on this
// machine for the tests of auth/spire: built from their Go module, not
// faked.
//
// Builds. The nested module internal/spiretest/module pins SPIRE
// v1.13.3 with Go tool directives (its own go.mod, because SPIRE needs
// k8s.io v0.34 and the main module is on a newer one; the main module
// only imports spire-api-sdk, which needs nothing but gRPC and
// protobuf). Build compiles both programs (cgo on, for the server's
// SQLite datastore; -ldflags=-s -w, which takes the server from 230 to
// 170 MB) into conformance/.cache/spire-<key>/ (gitignored), where key
// hashes the nested module's go.mod and go.sum, the build flags and the
// Go version and target: a cached build is reused until an input
// changes. Parallel callers share one build through a file lock; a new build removes those
// of earlier inputs. `make spire` (cmd spirebuild) runs Build, and `make
// integration` runs that before the tests, so CI builds once per change
// of inputs and the tests never skip there. Measured on two cores shared with
// other builds (load about 7): cold (empty Go build cache, modules
// already downloaded) 825 s wall,
// 761 s user CPU, 3.7 GB peak memory (SPIRE links every cloud SDK its
// plugins use); with the output cached `make spire` takes about 2 s, and
// the tests that use the binaries about 100 s (most of it waiting for
// 30 s SVIDs to rotate and expire).
//
// Deployments. StartServer runs spire-server with a SQLite datastore and
// an in-memory key manager under a temporary directory, join-token node
// attestation, its agent API on a free loopback port and its admin API on
// a Unix socket, and a configurable default X.509-SVID lifetime (short, to
// observe rotation). StartAgent creates a join token that registers the
// node alias spiffe://<td>/nodemesh/node/<name>, hands the agent the
// server's bundle fetched over the admin API (not insecure_bootstrap), and
// runs spire-agent with the unix workload attestor, a disk key manager
// (so Start after Stop keeps its identity without a second join token), a
// 1 s entry sync, and the given authorized_delegates on its admin socket.
// Register adds workload entries under an agent's alias, for example the
// delegate entry by unix uid and gid. Readiness is the API socket
// accepting connections (SPIRE opens it only once ready); child processes
// get SIGKILL if the test process dies.
//
// ForTest skips with the command to run when the binaries are not built
// and NODEMESH_INTEGRATION is not 1 (a plain go test, like the Kubernetes
// binaries' tests), builds them when it is (or fails the test if the
// build fails; never a skip), and prints the end of every SPIRE log when
// the test fails. Server.Halt stops the server alone, for outages.
package spiretest
