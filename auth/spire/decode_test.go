package spire

import (
	"bytes"
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	delegatedidentityv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/agent/delegatedidentity/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/issuer"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// pki mints real X.509-SVIDs (the built-in issuer's) to feed the decoder
// the bytes SPIRE would send.
type pki struct {
	t   testing.TB
	iss *issuer.Issuer
}

func newPKI(t testing.TB, domain spiffeid.TrustDomain) *pki {
	t.Helper()
	iss, err := issuer.New(domain, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &pki{t: t, iss: iss}
}

func (p *pki) svid(id auth.Identity) *x509svid.SVID {
	p.t.Helper()
	s, err := p.iss.SVID(context.Background(), id)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// wire is the Delegated Identity form of an SVID, with the SPIFFE ID the
// agent's entry names (normally the certificate's).
func wire(t testing.TB, s *x509svid.SVID, entryID spiffeid.ID) *delegatedidentityv1.X509SVIDWithKey {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	var chain [][]byte
	for _, c := range s.Certificates {
		chain = append(chain, c.Raw)
	}
	return &delegatedidentityv1.X509SVIDWithKey{
		X509Svid: &types.X509SVID{
			Id:        &types.SPIFFEID{TrustDomain: entryID.TrustDomain().Name(), Path: entryID.Path()},
			CertChain: chain,
			ExpiresAt: s.Certificates[0].NotAfter.Unix(),
		},
		X509SvidKey: key,
	}
}

func identityID(domain spiffeid.TrustDomain, id auth.Identity) spiffeid.ID {
	sid, err := auth.SPIFFEID(domain, id)
	if err != nil {
		panic(err)
	}
	return sid
}

func TestDecodeSVIDs(t *testing.T) {
	p := newPKI(t, td)
	other := newPKI(t, spiffeid.RequireTrustDomainFromString("other.org"))
	s100, s101, s102 := p.svid(100), p.svid(101), p.svid(102)
	foreign := other.svid(100)
	now := time.Now()

	good := wire(t, s100, identityID(td, 100))
	noKey := wire(t, s101, identityID(td, 101))
	noKey.X509SvidKey = nil
	wrongKey := wire(t, s101, identityID(td, 101))
	wrongKey.X509SvidKey = wire(t, s102, identityID(td, 102)).X509SvidKey
	mismatch := wire(t, s102, identityID(td, 103)) // entry says 103, certificate 102
	noChain := wire(t, s101, identityID(td, 101))
	noChain.X509Svid.CertChain = nil
	garbage := wire(t, s101, identityID(td, 101))
	garbage.X509Svid.CertChain = [][]byte{[]byte("not a certificate")}
	notIdentity := wire(t, s101, spiffeid.RequireFromPath(td, "/nodemesh/agent"))
	otherTD := wire(t, foreign, identityID(foreign.ID.TrustDomain(), 100))

	cases := []struct {
		name     string
		in       []*delegatedidentityv1.X509SVIDWithKey
		now      time.Time
		max      int
		want     []auth.Identity
		problems []string
		skipped  int
		expired  int
		dropped  int
	}{
		{name: "good", in: []*delegatedidentityv1.X509SVIDWithKey{good, wire(t, s101, identityID(td, 101))}, want: []auth.Identity{100, 101}},
		{name: "empty set", in: nil},
		{name: "no SPIFFE ID", in: []*delegatedidentityv1.X509SVIDWithKey{{X509Svid: &types.X509SVID{}}, good}, want: []auth.Identity{100}, problems: []string{"no SPIFFE ID"}},
		{name: "nil entry", in: []*delegatedidentityv1.X509SVIDWithKey{nil, good}, want: []auth.Identity{100}, problems: []string{"no SPIFFE ID"}},
		{name: "missing key", in: []*delegatedidentityv1.X509SVIDWithKey{noKey, good}, want: []auth.Identity{100}, problems: []string{"no private key"}},
		{name: "key of another SVID", in: []*delegatedidentityv1.X509SVIDWithKey{wrongKey, good}, want: []auth.Identity{100}, problems: []string{"does not match"}},
		{name: "certificate names another identity", in: []*delegatedidentityv1.X509SVIDWithKey{mismatch}, problems: []string{"certificate names spiffe://example.org/identity/102"}},
		{name: "empty chain", in: []*delegatedidentityv1.X509SVIDWithKey{noChain}, problems: []string{"empty certificate chain"}},
		{name: "garbage chain", in: []*delegatedidentityv1.X509SVIDWithKey{garbage}, problems: []string{"cannot parse"}},
		{name: "not an identity path", in: []*delegatedidentityv1.X509SVIDWithKey{notIdentity, good}, want: []auth.Identity{100}, skipped: 1},
		{name: "other trust domain", in: []*delegatedidentityv1.X509SVIDWithKey{otherTD}, skipped: 1},
		{name: "expired", in: []*delegatedidentityv1.X509SVIDWithKey{good}, now: s100.Certificates[0].NotAfter, expired: 1},
		{name: "limit keeps the lowest", in: []*delegatedidentityv1.X509SVIDWithKey{wire(t, s102, identityID(td, 102)), good, wire(t, s101, identityID(td, 101))}, max: 2, want: []auth.Identity{100, 101}, dropped: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.now.IsZero() {
				tc.now = now
			}
			if tc.max == 0 {
				tc.max = 10
			}
			set := decodeSVIDs(&delegatedidentityv1.SubscribeToX509SVIDsResponse{X509Svids: tc.in}, td, tc.now, tc.max)
			var got []auth.Identity
			for id := range set.svids {
				got = append(got, id)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("identities %v, want %v", got, tc.want)
			}
			for _, id := range tc.want {
				sv := set.svids[id]
				if sv == nil {
					t.Fatalf("identities %v, want %v", got, tc.want)
				}
				if sv.ID != identityID(td, id) {
					t.Errorf("identity %d: SVID of %s", id, sv.ID)
				}
			}
			if len(set.problems) != len(tc.problems) {
				t.Fatalf("problems %v, want %d matching %q", set.problems, len(tc.problems), tc.problems)
			}
			for i, want := range tc.problems {
				if !strings.Contains(set.problems[i].Error(), want) {
					t.Errorf("problem %q, want it to mention %q", set.problems[i], want)
				}
			}
			if set.skipped != tc.skipped || len(set.expired) != tc.expired || set.dropped != tc.dropped {
				t.Errorf("skipped/expired/dropped %d/%d/%d, want %d/%d/%d", set.skipped, len(set.expired), set.dropped, tc.skipped, tc.expired, tc.dropped)
			}
		})
	}
}

// Two entries may name one identity (two parents authorized to the same
// agent); the longer-lived SVID wins whatever the order.
func TestDecodeSVIDsDuplicateKeepsLongerLived(t *testing.T) {
	early := newPKI(t, td)
	s1 := early.svid(100)
	time.Sleep(1100 * time.Millisecond) // certificate times have one-second resolution
	s2 := newPKI(t, td).svid(100)
	if !s2.Certificates[0].NotAfter.After(s1.Certificates[0].NotAfter) {
		t.Fatal("second SVID does not outlive the first")
	}
	for _, order := range [][]*x509svid.SVID{{s1, s2}, {s2, s1}} {
		resp := &delegatedidentityv1.SubscribeToX509SVIDsResponse{}
		for _, s := range order {
			resp.X509Svids = append(resp.X509Svids, wire(t, s, identityID(td, 100)))
		}
		set := decodeSVIDs(resp, td, time.Now(), 10)
		if got := set.svids[100]; got == nil || !bytes.Equal(got.Certificates[0].Raw, s2.Certificates[0].Raw) {
			t.Errorf("kept the shorter-lived SVID")
		}
	}
}

func TestDecodeBundle(t *testing.T) {
	p := newPKI(t, td)
	auths := p.iss.Authorities()
	leaf := p.svid(100).Certificates[0]
	cat := func(cs ...*x509.Certificate) []byte {
		var b []byte
		for _, c := range cs {
			b = append(b, c.Raw...)
		}
		return b
	}
	many := make([]*x509.Certificate, maxAuthorities+1)
	for i := range many {
		many[i] = auths[0]
	}
	cases := []struct {
		name string
		in   map[string][]byte
		err  string
	}{
		{name: "good, with a federated bundle", in: map[string][]byte{"spiffe://example.org": cat(auths...), "spiffe://other.org": []byte("ignored")}},
		{name: "missing", in: map[string][]byte{"spiffe://other.org": cat(auths...)}, err: "no bundle for spiffe://example.org"},
		{name: "keyed by name, not ID", in: map[string][]byte{"example.org": cat(auths...)}, err: "no bundle"},
		{name: "garbage", in: map[string][]byte{"spiffe://example.org": []byte{0x30, 0x03, 0x01}}, err: "parsing the authorities"},
		{name: "empty", in: map[string][]byte{"spiffe://example.org": nil}, err: "no authorities"},
		{name: "a leaf", in: map[string][]byte{"spiffe://example.org": cat(auths[0], leaf)}, err: "not a CA"},
		{name: "too many", in: map[string][]byte{"spiffe://example.org": cat(many...)}, err: "more than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := decodeBundle(&delegatedidentityv1.SubscribeToX509BundlesResponse{CaCertificates: tc.in}, td)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.TrustDomain() != td || len(b.X509Authorities()) != len(auths) {
				t.Errorf("bundle of %s with %d authorities, want %s with %d", b.TrustDomain(), len(b.X509Authorities()), td, len(auths))
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes, as the agent's stream would deliver
// them, to both decoders: they must never panic, and every SVID they keep
// must be a valid SVID of td's identity it is filed under.
func FuzzDecode(f *testing.F) {
	p := newPKI(f, td)
	good, err := proto.Marshal(&delegatedidentityv1.SubscribeToX509SVIDsResponse{X509Svids: []*delegatedidentityv1.X509SVIDWithKey{
		wire(f, p.svid(100), identityID(td, 100)), wire(f, p.svid(7), spiffeid.RequireFromPath(td, "/identity/07")),
	}})
	if err != nil {
		f.Fatal(err)
	}
	var cas []byte
	for _, c := range p.iss.Authorities() {
		cas = append(cas, c.Raw...)
	}
	bundle, err := proto.Marshal(&delegatedidentityv1.SubscribeToX509BundlesResponse{CaCertificates: map[string][]byte{"spiffe://example.org": cas}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bundle)
	f.Add([]byte{})
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		var svids delegatedidentityv1.SubscribeToX509SVIDsResponse
		if proto.Unmarshal(b, &svids) == nil {
			set := decodeSVIDs(&svids, td, now, 4)
			if len(set.svids) > 4 {
				t.Fatalf("%d SVIDs kept, limit 4", len(set.svids))
			}
			for id, s := range set.svids {
				if s.ID != identityID(td, id) || len(s.Certificates[0].URIs) != 1 || !now.Before(s.Certificates[0].NotAfter) {
					t.Fatalf("identity %d filed with an SVID of %s", id, s.ID)
				}
			}
		}
		var bundles delegatedidentityv1.SubscribeToX509BundlesResponse
		if proto.Unmarshal(b, &bundles) == nil {
			if bd, err := decodeBundle(&bundles, td); err == nil {
				for _, c := range bd.X509Authorities() {
					if !c.IsCA {
						t.Fatal("bundle holds a non-CA")
					}
				}
			}
		}
	})
}
