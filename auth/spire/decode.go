package spire

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	delegatedidentityv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/agent/delegatedidentity/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"

	"github.com/nodemesh/nodemesh/auth"
)

// maxAuthorities bounds the X.509 authorities of one trust domain's
// bundle. SPIRE keeps the current and the next authority and those whose
// SVIDs may still be valid: a handful. Far more is not a bundle.
const maxAuthorities = 256

// svidSet is one decoded SubscribeToX509SVIDs message: the SVIDs of the
// identities it names, plus what was wrong with the rest.
type svidSet struct {
	svids map[auth.Identity]*x509svid.SVID
	// skipped counts entries of other trust domains or with paths that
	// are not /identity/<n>: the selector matched an entry that is not
	// ours. Not an error.
	skipped int
	// expired holds the NotAfter of the identities whose SVIDs arrived
	// already expired (and no valid one with them): the agent could not
	// renew them, which SVID's error names. At most maxSVIDs.
	expired map[auth.Identity]time.Time
	// dropped counts identities beyond the limit.
	dropped int
	// problems are the entries that claimed to be ours and were broken.
	problems []error
}

// decodeSVIDs turns one message (the agent's complete current set) into
// the SVIDs of td's identities. It never fails as a whole: each broken
// entry is reported and left out, so one bad SVID cannot take the others
// down. At most maxSVIDs are kept, the lowest identities, so the choice is
// stable from one message to the next.
func decodeSVIDs(resp *delegatedidentityv1.SubscribeToX509SVIDsResponse, td spiffeid.TrustDomain, now time.Time, maxSVIDs int) svidSet {
	set := svidSet{svids: map[auth.Identity]*x509svid.SVID{}, expired: map[auth.Identity]time.Time{}}
	for i, w := range resp.GetX509Svids() {
		pid := w.GetX509Svid().GetId()
		if pid == nil {
			set.problems = append(set.problems, fmt.Errorf("SVID %d: no SPIFFE ID", i))
			continue
		}
		if pid.GetTrustDomain() != td.Name() {
			set.skipped++
			continue
		}
		id, err := spiffeid.FromPath(td, pid.GetPath())
		if err != nil {
			set.skipped++
			continue
		}
		ident, err := auth.IdentityOf(td, id)
		if err != nil {
			set.skipped++
			continue
		}
		svid, err := parseSVID(w, id)
		if err != nil {
			set.problems = append(set.problems, fmt.Errorf("SVID of %s: %w", id, err))
			continue
		}
		leaf := svid.Certificates[0]
		if !now.Before(leaf.NotAfter) {
			if prev, ok := set.expired[ident]; (ok || len(set.expired) < maxSVIDs) && leaf.NotAfter.After(prev) {
				set.expired[ident] = leaf.NotAfter
			}
			continue
		}
		// Two entries may name the same identity (different parents
		// both authorized to this agent): keep the longer-lived one.
		if prev := set.svids[ident]; prev != nil && !leaf.NotAfter.After(prev.Certificates[0].NotAfter) {
			continue
		}
		set.svids[ident] = svid
	}
	for id := range set.svids {
		delete(set.expired, id)
	}
	if len(set.svids) > maxSVIDs {
		ids := make([]auth.Identity, 0, len(set.svids))
		for id := range set.svids {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids[maxSVIDs:] {
			delete(set.svids, id)
		}
		set.dropped = len(ids) - maxSVIDs
	}
	return set
}

// parseSVID checks one entry: a chain whose leaf is a valid X.509-SVID for
// exactly id (one URI SAN, not a CA, digitalSignature) with the PKCS#8 key
// that matches it.
func parseSVID(w *delegatedidentityv1.X509SVIDWithKey, id spiffeid.ID) (*x509svid.SVID, error) {
	chain := w.GetX509Svid().GetCertChain()
	if len(chain) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	if len(w.GetX509SvidKey()) == 0 {
		return nil, errors.New("no private key")
	}
	svid, err := x509svid.ParseRaw(bytes.Join(chain, nil), w.GetX509SvidKey())
	if err != nil {
		return nil, err
	}
	if svid.ID != id {
		return nil, fmt.Errorf("certificate names %s", svid.ID)
	}
	return svid, nil
}

// decodeBundle extracts td's X.509 authorities from one
// SubscribeToX509Bundles message (every bundle the agent tracks, keyed by
// trust domain ID, each a concatenation of DER certificates). Federated
// bundles are ignored: nodemesh authenticates within one trust domain.
func decodeBundle(resp *delegatedidentityv1.SubscribeToX509BundlesResponse, td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	raw, ok := resp.GetCaCertificates()[td.IDString()]
	if !ok {
		return nil, fmt.Errorf("no bundle for %s among %d trust domains", td.IDString(), len(resp.GetCaCertificates()))
	}
	certs, err := x509.ParseCertificates(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing the authorities of %s: %w", td, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("the bundle of %s has no authorities", td)
	}
	if len(certs) > maxAuthorities {
		return nil, fmt.Errorf("the bundle of %s has %d authorities, more than %d", td, len(certs), maxAuthorities)
	}
	for _, c := range certs {
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("the bundle of %s holds %q, which is not a CA", td, c.Subject)
		}
	}
	return x509bundle.FromX509Authorities(td, certs), nil
}

// sameSVIDs says whether two sets hold the same certificates for the same
// identities (a message that only repeats the current set is no change).
func sameSVIDs(a, b map[auth.Identity]*x509svid.SVID) bool {
	if len(a) != len(b) {
		return false
	}
	for id, x := range a {
		y, ok := b[id]
		if !ok || !bytes.Equal(x.Certificates[0].Raw, y.Certificates[0].Raw) {
			return false
		}
	}
	return true
}

func sameBundle(a, b *x509bundle.Bundle) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

// selectorProto is the proto form of a selector.
func selectorProto(s Selector) *types.Selector {
	return &types.Selector{Type: s.Type, Value: s.Value}
}
