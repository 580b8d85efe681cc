package manager

import (
	"context"
	"net/netip"
	"time"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/handshake"
)

// Key names one authenticated relation, as the datapath's auth map keys
// it: an identity on this node, a peer identity and the node the peer
// lives on (0 for this node). The auth type is implied (SPIFFE); the
// datapath adapter adds it.
type Key struct {
	Local      auth.Identity
	Remote     auth.Identity
	RemoteNode uint16
}

// Entry is a row of the auth map.
type Entry struct {
	Key    Key
	Expiry time.Time
}

// Map is the auth map as the manager needs it. The composition root adapts
// the datapath's auth table to it (UpsertAuth/DeleteAuth and a listing),
// mapping Key to the datapath's key with the SPIFFE auth type and listing
// only rows of that type. Called only from the manager's goroutine; calls
// may block briefly (a map syscall) and must be safe to retry.
type Map interface {
	// Upsert writes the relation with its expiry.
	Upsert(k Key, expiry time.Time) error
	// Delete removes the relation; a missing one is not an error.
	Delete(k Key) error
	// List returns every relation in the map.
	List() ([]Entry, error)
}

// Pair is a relation that policy requires authenticated, with the address
// of the remote node's handshake server.
type Pair struct {
	Key
	Node netip.AddrPort
}

// Authenticator performs one handshake. *handshake.Client implements it.
// Called from the manager's worker goroutines concurrently; bounded in time
// by its own timeout and ctx. An error whose Rejected method reports true
// means the peer's credentials were judged invalid (the entry is dropped
// at once); any other error leaves a valid entry to its expiry.
type Authenticator interface {
	Authenticate(ctx context.Context, local, remote auth.Identity, node netip.AddrPort) (handshake.Result, error)
}

var _ Authenticator = (*handshake.Client)(nil)
