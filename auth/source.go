package auth

import (
	"context"
	"errors"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ErrNoSVID is returned by a Source that cannot provide an SVID for an
// identity (SPIRE has no entry for it, or the source is shutting down).
var ErrNoSVID = errors.New("no SVID for identity")

// Source provides the X.509-SVIDs of the identities on this node and the
// trust bundle to verify peers with. The built-in issuer (auth/issuer)
// mints them itself; a SPIRE Delegated Identity client receives them from
// a SPIRE agent. The handshake server and client, the Workload API server
// and the auth manager consume a Source and never care which one it is.
//
// Every method is safe for concurrent use from any goroutine. Returned
// values are shared and must not be modified.
type Source interface {
	// TrustDomain is the one trust domain this source issues for.
	TrustDomain() spiffeid.TrustDomain

	// SVID returns the current SVID of id. It may block until ctx ends
	// (the issuer mints on first use; SPIRE streams entries in). An SVID
	// is replaced before it expires (rotation); callers ask again rather
	// than keep one.
	SVID(ctx context.Context, id Identity) (*x509svid.SVID, error)

	// Bundle returns the current X.509 trust bundle of the trust domain:
	// every authority whose SVIDs are still accepted.
	Bundle() (*x509bundle.Bundle, error)

	// Subscribe returns a channel that receives a value after an SVID was
	// rotated or the bundle changed (coalesced: one value may stand for
	// many changes; receivers then ask SVID/Bundle again), and a cancel
	// function that releases the subscription. The channel is never
	// closed.
	Subscribe() (<-chan struct{}, func())
}

// Notifier is the broadcast half of Source.Subscribe for source
// implementations: every subscriber has a one-slot channel, so Notify
// never blocks and a slow subscriber sees one wake-up for many changes.
// The zero value is ready to use.
type Notifier struct {
	mu   sync.Mutex
	next uint64
	subs map[uint64]chan struct{}
}

// Subscribe implements Source.Subscribe.
func (n *Notifier) Subscribe() (<-chan struct{}, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs == nil {
		n.subs = map[uint64]chan struct{}{}
	}
	id := n.next
	n.next++
	ch := make(chan struct{}, 1)
	n.subs[id] = ch
	return ch, func() {
		n.mu.Lock()
		delete(n.subs, id)
		n.mu.Unlock()
	}
}

// Notify wakes every subscriber.
func (n *Notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
