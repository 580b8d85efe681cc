package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Identity is a numeric security identity, as the datapath and policy use
// it. It is a plain uint32 so the composition root converts to and from
// the datapath's identity type with a plain conversion.
type Identity uint32

// ErrNotIdentity is returned when a SPIFFE ID or server name does not name
// a numeric identity of the expected trust domain.
var ErrNotIdentity = errors.New("not a nodemesh identity")

// identityPrefix is the path every identity's SPIFFE ID has, followed by
// the decimal number (MA-03's spiffe://<trust domain>/identity/<id>).
const identityPrefix = "/identity/"

// SPIFFEID is the SPIFFE ID an identity's SVID carries.
func SPIFFEID(td spiffeid.TrustDomain, id Identity) (spiffeid.ID, error) {
	if id == 0 {
		return spiffeid.ID{}, fmt.Errorf("identity 0: %w", ErrNotIdentity)
	}
	return spiffeid.FromPath(td, identityPrefix+strconv.FormatUint(uint64(id), 10))
}

// IdentityOf parses the identity out of a SPIFFE ID. The ID must belong to
// td and its path must be exactly /identity/<n> with n a canonical
// decimal in 1..2^32-1: no sign, no leading zeros, nothing after it, so
// every identity has exactly one ID that names it.
func IdentityOf(td spiffeid.TrustDomain, id spiffeid.ID) (Identity, error) {
	if !id.MemberOf(td) {
		return 0, fmt.Errorf("%s is not in trust domain %s: %w", id, td, ErrNotIdentity)
	}
	num, ok := strings.CutPrefix(id.Path(), identityPrefix)
	if !ok {
		return 0, fmt.Errorf("%s: path is not %s<number>: %w", id, identityPrefix, ErrNotIdentity)
	}
	n, err := parseNumber(num)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", id, err)
	}
	return n, nil
}

// ServerName is the TLS server name an initiator sends to ask a node's
// handshake server for the SVID of identity id: "<id>.<trust domain>".
func ServerName(td spiffeid.TrustDomain, id Identity) string {
	return strconv.FormatUint(uint64(id), 10) + "." + td.Name()
}

// IdentityOfServerName parses a server name made by ServerName.
func IdentityOfServerName(td spiffeid.TrustDomain, name string) (Identity, error) {
	num, ok := strings.CutSuffix(name, "."+td.Name())
	if !ok {
		return 0, fmt.Errorf("server name %q is not <id>.%s: %w", name, td.Name(), ErrNotIdentity)
	}
	n, err := parseNumber(num)
	if err != nil {
		return 0, fmt.Errorf("server name %q: %w", name, err)
	}
	return n, nil
}

func parseNumber(s string) (Identity, error) {
	if s == "" || len(s) > 10 || (s[0] == '0') {
		return 0, fmt.Errorf("%q is not a canonical identity number: %w", s, ErrNotIdentity)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a canonical identity number: %w", s, ErrNotIdentity)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range: %w", s, ErrNotIdentity)
	}
	return Identity(n), nil
}
