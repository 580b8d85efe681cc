// Package auth is the mutual-authentication stage of the agent: SPIFFE
// identities for the numeric security identities on this node, the
// agent-to-agent handshake that proves a pair of them, and the manager
// that records proven pairs in the datapath's auth map, which gates
// traffic of policy rows marked auth-required.
//
// # Packages
//
//	auth              Identity (a plain uint32), the SPIFFE ID and TLS server
//	                  name of an identity, the Source interface, Notifier
//	auth/issuer       the built-in SPIFFE issuer: one CA per trust domain,
//	                  persisted, rotating; implements Source
//	auth/spire        SPIRE instead: Source from the SPIRE agent's Delegated
//	                  Identity API (admin socket), Registrar for the
//	                  per-identity entries on the SPIRE server
//	auth/workload     the SPIFFE Workload API (X.509) on a Unix socket for the
//	                  node's Pods, callers attested by their network namespace
//	auth/handshake    the TLS 1.3 handshake server (port 4250) and client
//	auth/manager      keeps the auth map in sync: eager, renewing, GC
//
// # Identities
//
// An identity's SPIFFE ID is spiffe://<trust domain>/identity/<number>
// (Cilium's format), with the number in canonical decimal, so each identity
// has exactly one ID and each ID at most one identity. Identity is a
// uint32 of auth's own, the same width as the stdlib-only
// datapath/model.Identity (which auth may import; the eBPF loader it may
// not): auth's API speaks of SPIFFE peers, and the composition root
// converts between the two with a plain conversion.
//
// # Source: where SVIDs come from
//
// Source (source.go) is the one interface every consumer uses: SVID(ctx,
// id) for the current X.509-SVID of a local identity, Bundle() for the
// trust bundle, Subscribe() for a coalesced wake-up after any rotation or
// bundle change. It is shaped so that two implementations fit:
//
//   - auth/issuer mints SVIDs itself (SVID never blocks beyond signing);
//   - auth/spire receives them from the SPIRE agent's Delegated Identity
//     stream and blocks in SVID until the identity's entry arrives.
//
// The agent obtains SVIDs for its local identities directly from the
// Source (the role SPIRE's Delegated Identity API plays for Cilium); the
// Workload API socket is only for workloads.
//
// # Who calls what
//
//	composition root ── SetPairs(pairs) ──────────────▶ manager (never blocks)
//	datapath ring-buffer reader ── Request(key) ──────▶ manager (never blocks; drops when full)
//	manager goroutine ── Upsert/Delete/List ─────────▶ Map (the auth table adapter)
//	manager workers ── Authenticate ─────────────────▶ handshake.Client ──TCP──▶ peer's handshake.Server
//	handshake, workload, manager ── SVID/Bundle ─────▶ Source
//	issuer.Run ── Notify ────────────────────────────▶ subscribers (workload streams, manager)
//	spire.Source.Run ◀── SVID and bundle streams ──── SPIRE agent admin socket; Notify ▶ subscribers
//	composition root ── SetPeerAuthorities(peers' Authorities()) ▶ issuer
//	composition root ── Refresh() after endpoint changes ▶ workload server
//
// Each consumer defines the interface it needs (manager.Map,
// manager.Authenticator, handshake.Locals, workload.Attestor); the
// composition root fills them from its endpoint and node knowledge and the
// datapath.
//
// # Bounds (defaults)
//
// Handshake: TLS 1.3 only, 5 s for the whole exchange, 128 handshakes in
// progress per server and 8 per source address, no session resumption,
// nothing read after the handshake but one confirmation byte. Manager: 16
// handshakes at once, 4 per remote node (below the server's per-peer 8),
// 1024 queued requests, 512k relations (the auth map's size), retry backoff
// 1 s doubling to 1 min with ±20% jitter, GC every 5 min. Workload API: 256
// connections, 16 streams per connection, 64 KiB requests. Issuer: SVIDs
// 1 h, CA 1 year. SPIRE source: 16 MiB per message, 8192 SVIDs held,
// reconnect 1 s doubling to 30 s with ±20% jitter.
//
// # Failing closed
//
// Whatever goes wrong with an identity source, the answer is no SVID,
// never a weaker one: SVID returns an error wrapping ErrNoSVID that says
// why, the handshake then fails on both sides (reason no_svid), no auth
// map entry is written, and auth-required traffic stays dropped. Entries
// already written expire by themselves, because each carries the earlier
// NotAfter of the two SVIDs that proved it; nothing extends a pair's life
// beyond what its certificates allow. For SPIRE this covers an agent that
// is absent from the start, one that goes away (unexpired SVIDs keep
// serving until their NotAfter, so an agent restart is no outage), a
// server the agent cannot reach (its SVIDs run out unrenewed), and an
// agent that refuses this process as a delegate (SVID fails at once,
// wrapping spire.ErrRefused, naming authorized_delegates). Each case is
// visible in spire.Source.Status, the readiness signal meant for policy
// status ("Enforced" only while it is nil); see auth/spire's doc.
//
// # Wiring (the composition root)
//
// internal/agent computes, on every compilation, the pairs of the
// auth-required rows (each row's subject with every endpoint of its remote
// identity, on that endpoint's node: this node's own handshake address,
// or the Pod's status.hostIP for others) and hands them to the manager
// before the rows are written; it numbers the other nodes for the auth
// key and the ipcache (sticky per node name, not reused at once), adapts
// the datapath's auth table to manager.Map (agent.AuthMap, SPIFFE type
// only), reports policies that need authentication Pending while the
// source is not ready (spire.Source.Status; the issuer is ready once
// created) and serves /v1/auth (`nodemesh auth list`). cmd/nodemesh-agent
// picks the source with --mutual-auth builtin|spire, feeds the datapath's
// auth-required events to Request (agent.RequestAuth taps the one reader
// of the event ring buffer, which also records every event as a flow, so
// `nodemesh flows` and hubble show the auth-required drops), serves the
// handshake on --auth-port and the Workload API on the node's socket,
// attesting callers by finding their namespace among the bind-mounted ones
// (--auth-netns-dir) and matching its addresses to a local Pod. Builtin
// issuers of several nodes exchange their authorities (certificates only) through a shared
// directory (--auth-peer-authorities-dir), which is what the lab uses: the
// directory is read on inotify events (mesh/dirwatch) and rescanned
// every 30 s as the fallback (no watch, or a network file system another
// host writes); each node's file stands alone, so a bad one is skipped
// with its error and keeps its last good certificates while the others
// keep applying.
// nodemesh-controller runs auth/spire's Registrar (--spire-server-socket):
// per node, one entry per identity of the Pods bound to it.
//
// # Deferred
//
//   - an authority exchange for builtin issuers through the API server
//     (the shared directory needs a shared filesystem);
//   - Prometheus export of the Stats counters (they are in /v1/auth);
//   - JWT-SVIDs on the Workload API (answered Unimplemented).
package auth
