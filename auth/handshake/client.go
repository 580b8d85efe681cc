package handshake

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/internal/counter"
)

// Client initiates handshakes towards other nodes' handshake servers.
// It is safe for concurrent use.
type Client struct {
	src     auth.Source
	log     *slog.Logger
	timeout time.Duration
	dialer  *net.Dialer
	stats   *counter.Set
}

// Result is a successful handshake.
type Result struct {
	// Expiry is when the proof ends: the earlier of our SVID's NotAfter
	// and the end of the peer's verified chain.
	Expiry time.Time
	// Local is the leaf we presented; the auth manager compares it with
	// the source's current one to notice rotations.
	Local *x509.Certificate
	// Peer is the leaf the peer presented.
	Peer *x509.Certificate
}

// NewClient returns a client presenting SVIDs from src.
func NewClient(src auth.Source, opts ...Option) *Client {
	o := buildOptions(opts)
	return &Client{src: src, log: o.log, timeout: o.timeout, dialer: o.dialer, stats: counter.New(reasons...)}
}

// Stats returns the client's handshake counters by reason.
func (c *Client) Stats() map[string]uint64 { return c.stats.Snapshot() }

// Authenticate proves, against the handshake server at addr, that local
// (an identity of this node) and remote (an identity of that node) are who
// they claim: it presents local's SVID, asks for remote's with the server
// name "<remote>.<trust domain>", accepts only a chain to the trust bundle
// whose one URI SAN is remote's SPIFFE ID, and waits for the server's
// confirmation that it accepted ours. Bounded by the client's timeout and
// ctx. Failures are *Error.
func (c *Client) Authenticate(ctx context.Context, local, remote auth.Identity, addr netip.AddrPort) (Result, error) {
	res, err := c.authenticate(ctx, local, remote, addr)
	if err != nil {
		he := classify(err)
		c.stats.Inc(he.Reason)
		c.log.Warn("mutual-auth handshake failed", "localIdentity", local, "remoteIdentity", remote, "node", addr, "reason", he.Reason, "error", he.Err)
		return Result{}, he
	}
	c.stats.Inc(ReasonOK)
	c.log.Debug("mutual-auth handshake succeeded", "localIdentity", local, "remoteIdentity", remote, "node", addr, "expiry", res.Expiry)
	return res, nil
}

func (c *Client) authenticate(ctx context.Context, local, remote auth.Identity, addr netip.AddrPort) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	td := c.src.TrustDomain()
	svid, err := c.src.SVID(ctx, local)
	if err != nil {
		return Result{}, &Error{Reason: ReasonNoSVID, Err: err}
	}
	want, err := auth.SPIFFEID(td, remote)
	if err != nil {
		return Result{}, &Error{Reason: ReasonIdentity, Err: err}
	}
	conn, err := c.dialer.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var peerUntil time.Time
	var peerLeaf *x509.Certificate
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		ServerName:   auth.ServerName(td, remote),
		Certificates: []tls.Certificate{*tlsCertificate(svid)},
		// Web PKI verification does not apply; VerifyConnection does
		// the SPIFFE verification on every handshake.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			b, err := c.src.Bundle()
			if err != nil {
				return &Error{Reason: ReasonUntrusted, Err: err}
			}
			id, until, err := verifyPeer(cs.PeerCertificates, b, td, time.Now())
			if err != nil {
				return err
			}
			if id != remote {
				return fail(ReasonIdentity, "peer proved %s, want %s", cs.PeerCertificates[0].URIs[0], want)
			}
			peerUntil, peerLeaf = until, cs.PeerCertificates[0]
			return nil
		},
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return Result{}, err
	}
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		return Result{}, err
	}
	if b[0] != okByte {
		return Result{}, fail(ReasonTLS, "server confirmed with %#x, want %#x", b[0], okByte)
	}
	_ = tc.Close()
	leaf := svid.Certificates[0]
	expiry := leaf.NotAfter
	if peerUntil.Before(expiry) {
		expiry = peerUntil
	}
	return Result{Expiry: expiry, Local: leaf, Peer: peerLeaf}, nil
}
