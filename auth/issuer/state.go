package issuer

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// StateFile is the file in the state directory that holds the trust
// domain's authorities (certificates, the signing keys of the active and
// prepared ones, and the schedule). It is written 0600 and atomically.
const StateFile = "issuer.json"

// maxStateSize bounds what New reads from the state file: a handful of
// PEM certificates and keys fit in a few KiB.
const maxStateSize = 1 << 20

type stateDoc struct {
	Version     int            `json:"version"`
	TrustDomain string         `json:"trustDomain"`
	Authorities []authorityDoc `json:"authorities"`
}

type authorityDoc struct {
	Role        string    `json:"role"` // active, prepared, retired
	Certificate string    `json:"certificate"`
	Key         string    `json:"key,omitempty"`
	Created     time.Time `json:"created"`
	MaxSVIDTTL  string    `json:"maxSVIDTTL"`
	RetireAfter time.Time `json:"retireAfter,omitzero"`
}

const (
	roleActive   = "active"
	rolePrepared = "prepared"
	roleRetired  = "retired"
)

// authorities is the issuer's persistent state.
type authorities struct {
	active   *authority
	prepared *authority
	retired  []*authority
}

func (s *authorities) all() []*authority {
	var out []*authority
	if s.active != nil {
		out = append(out, s.active)
	}
	if s.prepared != nil {
		out = append(out, s.prepared)
	}
	return append(out, s.retired...)
}

// loadState reads the state file. A missing file is an empty state; a
// file others may read, of another trust domain, or with a broken
// authority is an error: the issuer refuses to start rather than silently
// start a new trust domain or use a key that may have leaked.
func loadState(dir string, td spiffeid.TrustDomain) (authorities, error) {
	path := filepath.Join(dir, StateFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return authorities{}, nil
	}
	if err != nil {
		return authorities{}, fmt.Errorf("opening issuer state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return authorities{}, fmt.Errorf("reading issuer state: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return authorities{}, fmt.Errorf("issuer state %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return authorities{}, fmt.Errorf("issuer state %s: mode %o lets others read the CA key; refusing it (want 0600)", path, fi.Mode().Perm())
	}
	if fi.Size() > maxStateSize {
		return authorities{}, fmt.Errorf("issuer state %s: %d bytes, more than %d", path, fi.Size(), maxStateSize)
	}
	var doc stateDoc
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return authorities{}, fmt.Errorf("decoding issuer state %s: %w", path, err)
	}
	if doc.Version != 1 {
		return authorities{}, fmt.Errorf("issuer state %s: version %d, want 1", path, doc.Version)
	}
	if doc.TrustDomain != td.Name() {
		return authorities{}, fmt.Errorf("issuer state %s: holds trust domain %q, configured %q", path, doc.TrustDomain, td.Name())
	}
	var st authorities
	for i, ad := range doc.Authorities {
		a, err := decodeAuthority(td, ad)
		if err != nil {
			return authorities{}, fmt.Errorf("issuer state %s: authorities[%d]: %w", path, i, err)
		}
		switch ad.Role {
		case roleActive:
			if st.active != nil {
				return authorities{}, fmt.Errorf("issuer state %s: authorities[%d]: second active authority", path, i)
			}
			st.active = a
		case rolePrepared:
			if st.prepared != nil {
				return authorities{}, fmt.Errorf("issuer state %s: authorities[%d]: second prepared authority", path, i)
			}
			st.prepared = a
		case roleRetired:
			st.retired = append(st.retired, a)
		default:
			return authorities{}, fmt.Errorf("issuer state %s: authorities[%d]: role %q", path, i, ad.Role)
		}
	}
	return st, nil
}

func decodeAuthority(td spiffeid.TrustDomain, ad authorityDoc) (*authority, error) {
	block, rest := pem.Decode([]byte(ad.Certificate))
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		return nil, errors.New("certificate: want exactly one PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if err := checkAuthorityCert(td, cert); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	ttl, err := time.ParseDuration(ad.MaxSVIDTTL)
	if err != nil || ttl <= 0 {
		return nil, fmt.Errorf("maxSVIDTTL %q: want a positive duration", ad.MaxSVIDTTL)
	}
	a := &authority{cert: cert, created: ad.Created, maxSVIDTTL: ttl, retireAfter: ad.RetireAfter}
	if ad.Role == roleRetired {
		if ad.Key != "" {
			return nil, errors.New("key: a retired authority keeps no key")
		}
		if ad.RetireAfter.IsZero() {
			return nil, errors.New("retireAfter: required for a retired authority")
		}
		return a, nil
	}
	kb, rest := pem.Decode([]byte(ad.Key))
	if kb == nil || kb.Type != "PRIVATE KEY" || len(rest) != 0 {
		return nil, errors.New("key: want exactly one PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key: %T, want ECDSA", k)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&ek.PublicKey) {
		return nil, errors.New("key: does not match the certificate")
	}
	a.key = ek
	return a, nil
}

// checkAuthorityCert accepts a certificate as an authority of td: a CA
// allowed to sign certificates, and, when it names a SPIFFE ID, the trust
// domain's own.
func checkAuthorityCert(td spiffeid.TrustDomain, cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return errors.New("not a CA certificate")
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("no certificate-signing key usage")
	}
	for _, u := range cert.URIs {
		id, err := spiffeid.FromURI(u)
		if err != nil || id != td.ID() {
			return fmt.Errorf("URI SAN %s is not the trust domain %s", u, td.ID())
		}
	}
	return nil
}

// saveState writes the state file atomically: a temporary file created
// 0600 in the same directory, synced, then renamed over the old one.
func saveState(dir string, td spiffeid.TrustDomain, st authorities) error {
	doc := stateDoc{Version: 1, TrustDomain: td.Name()}
	add := func(role string, a *authority) error {
		ad := authorityDoc{
			Role:        role,
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})),
			Created:     a.created.UTC(),
			MaxSVIDTTL:  a.maxSVIDTTL.String(),
			RetireAfter: a.retireAfter.UTC(),
		}
		if role != roleRetired {
			der, err := x509.MarshalPKCS8PrivateKey(a.key)
			if err != nil {
				return fmt.Errorf("encoding CA key: %w", err)
			}
			ad.Key = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		}
		doc.Authorities = append(doc.Authorities, ad)
		return nil
	}
	if st.active != nil {
		if err := add(roleActive, st.active); err != nil {
			return err
		}
	}
	if st.prepared != nil {
		if err := add(rolePrepared, st.prepared); err != nil {
			return err
		}
	}
	for _, a := range st.retired {
		if err := add(roleRetired, a); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding issuer state: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating issuer state directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, StateFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing issuer state: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already creates 0600; Chmod guards against an umask or
	// a future change of that default.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing issuer state: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing issuer state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing issuer state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing issuer state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, StateFile)); err != nil {
		return fmt.Errorf("writing issuer state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
