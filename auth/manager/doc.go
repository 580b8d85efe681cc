// Package manager keeps the datapath's auth map in sync with the relations
// policy requires authenticated.
//
// # Inputs and outputs
//
//   - SetPairs(pairs), from the composition root whenever policy or
//     endpoints change: every (local identity, remote identity, remote
//     node) that an auth-required rule allows, with the address of the
//     remote node's handshake server. It is authoritative. Remote node 0 is
//     this node; its pairs carry this node's own handshake address (the
//     agent authenticates to itself like to any peer).
//   - Request(key), from the datapath's ring-buffer reader on an auth-map
//     miss. Never blocks; a full queue (1024) drops and counts.
//   - The Source's rotation notifications.
//   - Out: Upsert/Delete/List on Map, a consumer-defined interface the
//     composition root adapts to the datapath's auth table (key plus the
//     SPIFFE auth type; expiry converted to boot-time by the datapath).
//
// # Behaviour
//
//   - Eager: a new pair is authenticated at once, before any connection
//     needs it, so the first packet is not dropped.
//   - Expiry = the handshake result's (the earlier NotAfter of both sides).
//   - Renewal at two thirds of the proof's remaining life. With SVIDs
//     rotated at half-life a proof always has at least half an SVID
//     lifetime left when made, so renewal leaves a sixth of a lifetime of
//     margin (10 min with 1 h SVIDs).
//   - Rotation: when a local SVID changes, the pairs proven with the old one
//     are re-authenticated at once; when an authority leaves the bundle,
//     all pairs are.
//   - On-demand: a request for a key not in the pairs is authenticated too
//     (authentication grants nothing by itself; the policy row still
//     decides), provided its node's address is known from the pairs. Such
//     an entry is not renewed, is deleted at its expiry (a later miss
//     brings it back) and by the next SetPairs that does not name it.
//     A request for a valid entry rewrites it (the map may have lost it).
//   - Removal: a pair missing from SetPairs (its identity, its node or its
//     policy went) has its entry deleted at once.
//   - Revocation: a re-authentication the peer fails on its credentials
//     (handshake.Error.Rejected: expired, untrusted, wrong identity, refused
//     …) deletes the entry at once; a network failure or timeout leaves a
//     valid entry to its expiry and retries.
//   - GC every 5 min (and right after the first SetPairs, when it is first
//     known what should exist): expired entries and entries of untracked
//     keys (leftovers of an earlier run) are deleted; tracked valid entries
//     missing from the map are written again.
//
// # Goroutines and bounds
//
// Run owns all state and is the only caller of Map. Handshakes run on up to
// 16 worker goroutines (WithWorkers), at most 4 towards one node
// (WithPerNode, under the handshake server's per-peer limit of 8); due
// relations beyond a node's bound wait for one of its handshakes to
// finish. Failures back off from 1 s doubling to 1 min with ±20% jitter
// per relation (WithBackoff), and a request does not bypass the backoff.
// At most 512k relations are tracked (the auth map's size). Each handshake
// is bounded by the handshake client's timeout. Stats counts every outcome.
package manager
