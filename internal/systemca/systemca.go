// Package systemca reads the host's bundle of well-known CA certificates,
// which a BackendTLSPolicy with wellKnownCACertificates System trusts
// (gateway.Options.SystemCAs). The agent and the controller read it once
// at startup, so both translate with the same bundle.
//
// Where: the file SSL_CERT_FILE names, else the first of the usual
// locations of Linux distributions that exists (Debian and Ubuntu, Fedora
// and RHEL, openSUSE, Alpine). Only CERTIFICATE blocks that parse are
// kept (a distribution bundle may carry comments between them); a file
// without one is an error, as is a bundle over 8 MiB (distribution
// bundles are a few hundred KiB).
package systemca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// Files are the usual locations of the system bundle, in order.
var Files = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

const maxBundle = 8 << 20

// ErrNotFound says no bundle exists in any location.
var ErrNotFound = errors.New("no system CA bundle found")

// Load returns the system bundle as PEM certificates, and the file it
// came from.
func Load() ([]byte, string, error) {
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		b, err := read(f)
		return b, f, err
	}
	for _, f := range Files {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		b, err := read(f)
		return b, f, err
	}
	return nil, "", ErrNotFound
}

func read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading system CA bundle: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxBundle+1))
	if err != nil {
		return nil, fmt.Errorf("reading system CA bundle %s: %w", path, err)
	}
	if len(raw) > maxBundle {
		return nil, fmt.Errorf("reading system CA bundle %s: larger than %d bytes", path, maxBundle)
	}
	return Clean(raw, path)
}

// Clean keeps the CERTIFICATE blocks of raw that parse, re-encoded.
func Clean(raw []byte, path string) ([]byte, error) {
	var out bytes.Buffer
	for rest := raw; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			continue
		}
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: blk.Bytes})
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("reading system CA bundle %s: no certificate", path)
	}
	return out.Bytes(), nil
}
