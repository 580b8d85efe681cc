// Package issuer is the built-in SPIFFE issuer: an X.509 certificate
// authority per trust domain that mints X.509-SVIDs for the numeric
// identities of this node. It implements auth.Source.
//
// # SVIDs
//
// Each SVID has a fresh ECDSA P-256 key, exactly one URI SAN (the
// identity's SPIFFE ID, spiffe://<trust domain>/identity/<n>), key usage
// digitalSignature, extended key usages serverAuth and clientAuth, is not a
// CA, and is valid for the SVID lifetime (default 1 h, WithSVIDTTL) but
// never beyond its authority. NotBefore is backdated 10 s for peers whose
// clocks lag; schedules count from the real issue time. An SVID is minted
// on first request, rotated at half its remaining life by Run (and never
// handed out past that point even without Run), and forgotten when nobody
// asked for it during a whole lifetime. Subscribers are notified of every
// rotation.
//
// # Authorities and their rotation
//
// An authority is a self-signed ECDSA P-256 CA restricted to signing leaves
// (path length 0), with the trust domain's SPIFFE ID as its URI SAN, valid
// for the CA lifetime (default 1 year, WithCATTL; at least four SVID
// lifetimes). Its life has three stages:
//
//   - at half its life the next authority is prepared: created, persisted
//     and added to the bundle, but not yet signing, so every verifier (and,
//     through the composition root, every other node) learns it first;
//   - at three quarters the prepared one becomes active and the old one is
//     retired: it keeps no key and stays in the bundle until every SVID it
//     signed has expired (retirement time plus the longest SVID lifetime it
//     ever signed with, remembered across restarts, capped by its own
//     NotAfter);
//   - then it leaves the bundle.
//
// If the agent was down past an authority's whole life, all its SVIDs have
// expired too; it is dropped and a new one starts. If it was down past the
// activation point only, the prepared authority activates at once.
//
// # Persistence
//
// The state directory (created 0700) holds issuer.json (0600): the
// authorities with their roles, the keys of the active and prepared ones,
// and the schedule, so an agent restart keeps the trust domain and every
// SVID it signed stays valid. Every change is written to a temporary file,
// synced and renamed over the old one before it takes effect; if writing
// fails the issuer keeps its current authorities and retries in 30 s. A
// state file others may read, of another trust domain, of unknown fields
// or with a key that does not match its certificate is refused: the issuer
// does not start rather than silently begin a new trust domain or use a key
// that may have leaked.
//
// # Several nodes
//
// Every node runs its own issuer with its own authorities. The composition
// root publishes each node's Authorities() (certificates only, never keys)
// and hands the other nodes' to SetPeerAuthorities, so the bundle holds the
// trust domain's authorities of every node. Key material never leaves a
// node. As with any shared trust domain, a node that is compromised can
// mint any identity of it; SPIRE (auth/spire, with entries per node)
// narrows what a node receives.
package issuer
