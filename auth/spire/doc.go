// Package spire connects mutual authentication to SPIRE: Source is an
// auth.Source whose SVIDs come from the node's SPIRE agent through its
// Delegated Identity API, and Registrar creates and deletes the SPIRE
// registration entries those SVIDs are issued for. SPIRE replaces the
// built-in issuer (auth/issuer) where a cluster already runs it; every
// consumer (handshake, workload, manager) takes either.
//
// # Production wiring
//
//	nodemesh-controller ── Registrar.Sync(node alias, identities on that node) ──▶ spire-server Entry API
//	spire-server ── entries, SVIDs ──▶ spire-agent (one per node)
//	nodemesh-agent: Source.Run ── SubscribeToX509SVIDs(nodemesh:mutual-auth),
//	                               SubscribeToX509Bundles ──▶ spire-agent admin socket
//	handshake, workload, manager ── SVID/Bundle/Subscribe ──▶ Source
//
// Entries. One registration entry per identity per node hosting it:
// SPIFFE ID spiffe://<td>/identity/<n>, the selector nodemesh:mutual-auth
// (WithSelector), parent the node's alias. The selector is nobody's
// workload attestation result: an entry with only it is delivered to no
// workload, only to a delegate that asks for it by that selector. The
// parent decides which agents receive an entry, so parenting on the
// hosting node's alias means a node receives SVIDs only for the identities
// it hosts (Cilium parents every entry on one operator ID that all agents
// resolve to, so every node can present every identity). The price: a
// node holds an identity's SVID only once the controller registered it
// there and the agent synced (sync_interval, 5 s by default), so the first
// handshake of an identity new to a node waits that long (SVID blocks, the
// manager retries). Registrar.Sync takes the parent, so the cluster-wide
// layout (one alias all agents match, the full identity list) is a call
// away where that delay or the per-node bookkeeping is not wanted. The default selector is not Cilium's
// cilium:mutual-auth: Sync deletes the entries under its parent with its
// selector that it did not ask for, so two controllers sharing a SPIRE
// server must not share a selector.
//
// Who registers. The nodemesh-controller (one per cluster, like Cilium's
// operator) runs the Registrar: it sees every identity and on which node
// its endpoints are, calls Sync per node when that changes and
// periodically (Sync is a full reconcile: create missing, delete extra and
// duplicate entries, correct lifetimes; idempotent; batches of 200). It
// needs admin rights on the SPIRE server's API: an admin entry for the
// controller's workload and TCP with its X.509-SVID, or the server's local
// socket (DialServer) when co-located. It never sees key material. The
// node aliases (spiffe://<td>/nodemesh/node/<name>, with k8s_psat's
// agent_node_name selector) and the delegate entry of the nodemesh agent
// (spiffe://<td>/nodemesh/agent, the k8s workload attestor's namespace and
// service account selectors, parented on the aliases) belong to the SPIRE
// deployment, as does listing that ID in every spire-agent's
// authorized_delegates. nodemesh-controller runs the Registrar with
// --spire-server-socket (the per-node layout).
//
// Delegate. The SPIRE agent attests the caller of its admin socket like
// a workload (the unix attestor's uid/gid, or k8s selectors) and admits it
// only if one of its registration entries' SPIFFE IDs is listed in
// authorized_delegates; otherwise the stream ends with PermissionDenied
// ("caller not configured as an authorized delegate", or "no identity
// issued" when no entry matches at all). Source logs that at error level
// and SVID returns it at once, wrapping ErrRefused and auth.ErrNoSVID,
// instead of letting callers wait for an SVID that cannot come; it keeps
// retrying with backoff, since the fix is a configuration change on the
// SPIRE side.
//
// # Source
//
// Run holds two streams on one gRPC connection to the admin socket:
// SubscribeToX509SVIDs by the selector (each message is the complete
// current set with PKCS#8 keys) and SubscribeToX509Bundles (every trust
// domain's CA certificates; only our own is used). Each message replaces
// what the Source holds: an identity missing from a message is gone at
// once (entry deleted), not at expiry. Subscribers are woken when the set
// of SVIDs (added, rotated, removed) or the bundle changes, and when a
// stream goes down or comes back; a repeated identical message wakes
// nobody. Status says whether both streams deliver, and if not why (for
// status output and readiness).
//
// SVID(ctx, id) returns the SVID from the last message if it has not
// expired and a bundle arrived too (an SVID without the authorities to
// verify the peer is of no use); otherwise it waits for the next change
// until ctx ends, and the error says why (no entry for it, its SVID
// expired, the stream's last error). It never returns an expired SVID,
// also while the agent is away. After Run returns it no longer waits.
//
// A stream that ends (agent restarted, socket gone, oversized message) is
// reopened after 1 s doubling to 30 s with ±20% jitter, back to 1 s once
// a stream delivered. Meanwhile the last good SVIDs keep serving until
// each expires and the last good bundle keeps serving. An SVID that
// expires meanwhile wakes no subscriber: what was proven with it expires
// with it (a handshake's expiry is bounded by both SVIDs' NotAfter).
//
// Each SVID is checked before it is kept: the entry's SPIFFE ID must be
// /identity/<n> of our trust domain (others the selector matched are
// skipped silently), the chain must parse as an X.509-SVID of exactly that
// ID (one URI SAN, not a CA, digitalSignature) and the key must match the
// leaf. A broken SVID is logged and left out; the rest of the message
// counts. Two entries for one identity (two parents authorized to this
// agent) yield the longer-lived SVID. A bundle must be CA certificates
// only; a broken one is logged and the last good bundle stays. Whether an
// SVID chains to the bundle is for the peer to verify (the handshake
// does); the local agent is trusted for what it hands out.
//
// # SPIRE unavailable: fail closed
//
// Nothing the Source serves is ever more than what SPIRE issued and what
// is still valid: with the agent unreachable from the start, SVID waits
// and then fails (auth.ErrNoSVID) naming the stream's error and the
// socket, Bundle fails with ErrNoBundle, and the handshake proves nothing
// in either direction. With the agent gone later, or the SPIRE server
// gone so the agent cannot renew, each SVID keeps serving until its
// NotAfter and not a moment longer; a pair proven with it expires with
// it (the auth map entry's expiry is the earlier NotAfter of the two
// SVIDs), so auth-required traffic stops at the latest when the SVIDs
// would have. SVID's error then says which it was ("its SVID expired at
// ..." plus the stream's error, or "the SPIRE agent holds only an expired
// SVID for it ... can it reach the SPIRE server?"). Status is the
// readiness signal: nil only while both streams deliver and no SVID the
// agent handed out has expired unrenewed (the server-away case, where
// the agent's streams stay up). Keeping
// unexpired SVIDs across a short agent restart was chosen over dropping
// them at once because they are as valid as they were a second before
// (SPIRE itself keeps handing them out from its cache while the server
// is away), and dropping them would turn every spire-agent upgrade into a
// mesh-wide auth outage.
//
// # Bounds (defaults)
//
// 16 MiB per received message (gRPC's limit, WithMaxMessageSize; about
// ten thousand SVIDs; a larger message ends the stream and the last good
// state stays); 8192 SVIDs held (WithMaxSVIDs; beyond it the lowest
// identities are kept and an error is logged, so the choice is stable and
// never grants an identity SPIRE did not send); 256 authorities in the
// bundle. Registrar: at most 131072 entries read back per Sync
// (WithMaxEntries), 200 per request.
//
// # Tests
//
// source_test.go and decode_test.go drive the Source against an
// in-process Delegated Identity server on a real Unix socket (real gRPC,
// SVIDs minted by auth/issuer) for what SPIRE cannot be made to send on
// demand: broken and oversized messages, a refusal, a stream cut mid-way,
// expiry under a controlled clock; FuzzDecode feeds arbitrary bytes to the
// decoders. spire_integration_test.go runs real spire-server and
// spire-agent (SPIRE v1.13.3, built by internal/spiretest): two nodes'
// agents attested by join tokens, entries created by the Registrar, both
// Sources receiving exactly their node's SVIDs and the server's bundle,
// rotation observed before expiry, an authority appended to the server's
// bundle reaching both Sources, a deleted entry's SVID going away, a
// handshake between the nodes with SPIRE SVIDs (and failing when a node
// presents another identity's SVID), an agent restart, the agent gone
// until the SVIDs expired (nothing served, no handshake in either
// direction, Status and SVID say why; all back once it returns), and
// callers the agent refuses, and last the server halted until the SVIDs
// expired unrenewed (SVID fails, Status says so, no handshake). `make spire` builds the binaries (cached),
// `make integration` runs it and then these tests with
// NODEMESH_INTEGRATION=1, under which a missing build is built or fails
// the test, never skipped. A plain go test without the binaries skips
// them and says how to run them.
package spire
