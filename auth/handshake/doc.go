// Package handshake is the agent-to-agent mutual-authentication handshake:
// a TLS 1.3 exchange on the handshake port (4250) in which two nodes' agents
// prove, with X.509-SVIDs, that a local identity and a remote identity are
// who they claim. The handshake carries no workload data (the datapath
// gates the workloads' own connections on its outcome).
//
// # Exchange
//
// The initiator (Client.Authenticate, for a local identity L and a remote
// identity R on a node) connects and sends the server name
// "<R>.<trust domain>"; it presents L's SVID. The server parses the name,
// refuses unless R has an endpoint on its node (Locals), and presents R's
// SVID. Each side then verifies the other's chain itself (verify.go):
//
//   - exactly one URI SAN, a SPIFFE ID of the trust domain with path
//     /identity/<n> (canonical decimal);
//   - the leaf is not a CA and may not sign certificates or CRLs;
//   - the leaf is valid now;
//   - the chain leads to an authority of the Source's bundle, valid now.
//
// The initiator also requires the proven identity to be exactly R. In TLS
// 1.3 the client finishes its handshake before the server has judged the
// client's certificate, so the server, once it accepted the client, sends
// one confirmation byte; the initiator counts the handshake successful only
// after reading it. A server refusal reaches the initiator as a TLS alert
// (reason "refused").
//
// The result's expiry is the earlier of the two proofs' ends: the
// initiator's own SVID NotAfter and the earliest NotAfter along the peer's
// verified chain. The server writes nothing: the side whose policy requires
// the relation initiates and records it.
//
// # Bounds
//
// TLS 1.3 only (a client offering less is refused before any certificate),
// no session tickets or resumption (every handshake verifies both chains),
// one timeout for the whole exchange (default 5 s, the connection's
// deadline, so a slow or stalled peer is cut off at the same moment however
// it trickles), at most 128 handshakes in progress per server and 8 per
// source address (a connection beyond either is closed at once), and no
// read beyond the handshake and the one confirmation byte. crypto/tls
// bounds the size of handshake messages. A handshake's slot is freed before
// the confirmation byte is sent, so an initiator that waits for it never
// meets its own finished handshake in the per-address count.
//
// # Reasons and counters
//
// Every end of a handshake has one reason (errors.go) — ok, timeout,
// not_tls, tls_version, server_name, no_certificate, expired,
// trust_domain, san, bad_leaf, untrusted, identity, refused, no_svid,
// overload, peer_limit, network, tls — logged with the peer and counted in
// Stats, separately for server and client. Error.Rejected tells the auth
// manager whether the peer's credentials were judged (delete the entry at
// once) or the exchange merely failed (keep a valid entry to its expiry).
package handshake
