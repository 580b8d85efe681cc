package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/handshake"
	"github.com/nodemesh/nodemesh/auth/issuer"
	"github.com/nodemesh/nodemesh/auth/manager"
	"github.com/nodemesh/nodemesh/auth/spire"
	"github.com/nodemesh/nodemesh/auth/workload"
	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/agent/api"
)

// authOptions are the mutual-authentication flags.
type authOptions struct {
	source      *string
	trustDomain *string
	port        *uint
	stateDir    *string
	spireSocket *string
	peersDir    *string
	svidTTL     *time.Duration
	workloadAPI *string
	netnsDir    *string
}

func authFlags() *authOptions {
	return &authOptions{
		source: flag.String("mutual-auth", "", "run mutual authentication for policy rules with authentication.mode required, "+
			"with SVIDs from \"builtin\" (the agent's own SPIFFE issuer) or \"spire\" (the SPIRE agent's Delegated Identity API); needs --datapath"),
		trustDomain: flag.String("auth-trust-domain", "cluster.local", "SPIFFE trust domain of the identities"),
		port:        flag.Uint("auth-port", 4250, "port of the mutual-authentication handshake on every node"),
		stateDir:    flag.String("auth-state-dir", "", "builtin: directory of the issuer's state (default: <state-dir>/issuer)"),
		spireSocket: flag.String("auth-spire-admin-socket", "", "spire: the SPIRE agent's admin socket (admin_socket_path)"),
		peersDir: flag.String("auth-peer-authorities-dir", "", "builtin: a directory shared by the nodes; each agent publishes its issuer's "+
			"authorities (certificates only) there as <node>.pem and trusts the others'"),
		svidTTL: flag.Duration("auth-svid-ttl", issuer.DefaultSVIDTTL, "builtin: lifetime of the SVIDs the issuer mints"),
		workloadAPI: flag.String("auth-workload-socket", "", "serve the SPIFFE Workload API to the node's Pods on this Unix socket "+
			"(default: <state-dir>/workload.sock; \"-\": not at all)"),
		netnsDir: flag.String("auth-netns-dir", "/run/netns", "where the Pods' network namespaces are bind-mounted; the Workload API "+
			"attests a caller by finding its namespace there and matching its addresses to a local Pod"),
	}
}

// authRuntime is what setup built; start runs it once the agent exists.
type authRuntime struct {
	src     auth.Source
	iss     *issuer.Issuer
	spire   *spire.Source
	mgr     *manager.Manager
	client  *handshake.Client
	server  *handshake.Server
	hosts   *hosts
	wl      *workload.Server
	wlPath  string
	att     *netnsAttestor
	dp      *datapath.Datapath
	port    uint16
	node    string
	peers   string
	log     *slog.Logger
	started bool
}

// setup builds the identity source, the handshake client and the auth
// manager and puts them into cfg.Auth. It needs the datapath (cfg.Datapath)
// and the node's addresses (cfg.HostIPs; the first is where other nodes
// reach this one). nil without --mutual-auth.
func (o *authOptions) setup(cfg *agent.Config, stateDir, nodeName string, log *slog.Logger) (*authRuntime, error) {
	if *o.source == "" {
		return nil, nil
	}
	dp, ok := cfg.Datapath.(*datapath.Datapath)
	if !ok || cfg.Policy == nil {
		return nil, errors.New("--mutual-auth needs --datapath: the datapath's auth map gates the traffic")
	}
	if len(cfg.HostIPs) == 0 {
		return nil, errors.New("--mutual-auth needs the node's address (--node-ips)")
	}
	if *o.port == 0 || *o.port > 65535 {
		return nil, fmt.Errorf("--auth-port must be 1-65535, got %d", *o.port)
	}
	td, err := spiffeid.TrustDomainFromString(*o.trustDomain)
	if err != nil {
		return nil, fmt.Errorf("parsing --auth-trust-domain: %w", err)
	}
	rt := &authRuntime{dp: dp, port: uint16(*o.port), node: nodeName, log: log}
	var ready func() error
	switch *o.source {
	case "builtin":
		dir := *o.stateDir
		if dir == "" {
			dir = filepath.Join(stateDir, "issuer")
		}
		if rt.iss, err = issuer.New(td, dir, issuer.WithSVIDTTL(*o.svidTTL), issuer.WithLogger(log)); err != nil {
			return nil, err
		}
		rt.src, rt.peers = rt.iss, *o.peersDir
		if rt.peers != "" && nodeName == "" {
			return nil, errors.New("--auth-peer-authorities-dir needs the node's name (--node-name)")
		}
	case "spire":
		if *o.spireSocket == "" {
			return nil, errors.New("--mutual-auth=spire needs --auth-spire-admin-socket")
		}
		if rt.spire, err = spire.New(td, *o.spireSocket, spire.WithLogger(log)); err != nil {
			return nil, err
		}
		rt.src, ready = rt.spire, rt.spire.Status
	default:
		return nil, fmt.Errorf("--mutual-auth: %q is not builtin or spire", *o.source)
	}
	rt.client = handshake.NewClient(rt.src, handshake.WithLogger(log))
	rt.hosts = &hosts{}
	rt.server = handshake.NewServer(rt.src, rt.hosts, handshake.WithLogger(log))
	rt.mgr = manager.New(agent.AuthMap(dp), rt.src, rt.client, manager.WithLogger(log))
	cfg.Auth = &agent.Auth{Pairs: rt.mgr, Ready: ready, Source: *o.source, NodeIP: cfg.HostIPs[0], Port: rt.port, Report: rt.report}
	switch rt.wlPath = *o.workloadAPI; rt.wlPath {
	case "-":
		rt.wlPath = ""
	case "":
		rt.wlPath = filepath.Join(stateDir, "workload.sock")
	}
	if rt.wlPath != "" {
		rt.att = &netnsAttestor{dir: *o.netnsDir, log: log}
		rt.wl = workload.New(rt.src, rt.att, workload.WithLogger(log))
		cfg.Auth.EndpointsChanged = rt.wl.Refresh
	}
	return rt, nil
}

// hosts adapts the agent to handshake.Locals (set by start, before the
// server serves).
type hosts struct{ a *agent.Agent }

func (h hosts) IsLocal(id auth.Identity) bool { return h.a.HostsIdentity(model.Identity(id)) }

// start runs the source, the handshake server, the manager and the
// authority exchange until ctx ends; their errors go to errc. The
// datapath's auth-required events reach the manager through the flow
// recorder's reader (policyOptions.recordEvents).
func (rt *authRuntime) start(ctx context.Context, a *agent.Agent, errc chan<- error) error {
	l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(int(rt.port))))
	if err != nil {
		return fmt.Errorf("listening for mutual-auth handshakes: %w", err)
	}
	rt.hosts.a = a
	if rt.wl != nil {
		rt.att.a = a
		wl, err := workload.Listen(rt.wlPath)
		if err != nil {
			return err
		}
		go func() { errc <- rt.wl.Serve(wl) }()
		go func() {
			<-ctx.Done()
			rt.wl.Stop()
		}()
	}
	srv := rt.server
	go func() { errc <- srv.Serve(l) }()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if rt.iss != nil {
		go func() { errc <- rt.iss.Run(ctx) }()
		if rt.peers != "" {
			go rt.exchangeAuthorities(ctx)
		}
	}
	if rt.spire != nil {
		go func() { errc <- rt.spire.Run(ctx) }()
	}
	go func() { errc <- rt.mgr.Run(ctx) }()
	// Readiness (and so policy status) follows the source.
	changed, cancel := rt.src.Subscribe()
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				a.AuthChanged()
			}
		}
	}()
	rt.log.Info("mutual authentication enabled", "port", rt.port, "trustDomain", rt.src.TrustDomain())
	return nil
}

// report fills /v1/auth.
func (rt *authRuntime) report() (api.AuthStatus, error) {
	var st api.AuthStatus
	rows, err := rt.dp.ListAuth()
	if err != nil {
		return st, err
	}
	for k, exp := range rows {
		if k.Type == model.AuthSPIFFE {
			st.Entries = append(st.Entries, api.AuthEntry{Local: uint32(k.Local), Remote: uint32(k.Remote), RemoteNode: k.RemoteNode, Expiry: exp})
		}
	}
	counters, err := rt.dp.Counters()
	if err != nil {
		return st, err
	}
	for k, c := range counters {
		if k.Reason == model.DropAuthRequired {
			st.AuthRequiredDrops += c.Packets
		}
	}
	st.Manager, st.Client = rt.mgr.Stats(), rt.client.Stats()
	st.Server = rt.server.Stats()
	return st, nil
}

// Bounds of the authority exchange: a peer's file is a few certificates.
const (
	maxPeerFile  = 64 << 10
	maxPeerFiles = 4096
	// exchangeEvery is how often the directory is read again. A shared
	// directory is the lab's (and a small cluster's) way of exchanging
	// certificates; a new authority is prepared half a CA lifetime
	// before it signs, so a second's delay costs nothing there.
	exchangeEvery = time.Second
)

// exchangeAuthorities publishes this node's issuer authorities in the
// shared directory as <node>.pem and hands every other node's to the
// issuer, until ctx ends. Only certificates are written; keys never leave
// the node.
func (rt *authRuntime) exchangeAuthorities(ctx context.Context) {
	if err := os.MkdirAll(rt.peers, 0o755); err != nil {
		rt.log.Error("creating the peer authorities directory", "error", err)
	}
	changed, cancel := rt.iss.Subscribe()
	defer cancel()
	tick := time.NewTicker(exchangeEvery)
	defer tick.Stop()
	var published []byte
	for {
		var own []byte
		for _, c := range rt.iss.Authorities() {
			own = append(own, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		if !slices.Equal(own, published) {
			if err := writeAtomic(filepath.Join(rt.peers, rt.node+".pem"), own); err != nil {
				rt.log.Error("publishing this node's authorities", "error", err)
			} else {
				published = own
			}
		}
		if certs, err := readPeerAuthorities(rt.peers, rt.node+".pem"); err != nil {
			rt.log.Warn("reading peer authorities", "error", err)
		} else if err := rt.iss.SetPeerAuthorities(certs); err != nil {
			rt.log.Warn("refusing peer authorities", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// readPeerAuthorities reads every *.pem but own, in name order. A file
// that is too large or does not parse is skipped with the error; the
// others still count.
func readPeerAuthorities(dir, own string) ([]*x509.Certificate, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, err
	}
	if len(names) > maxPeerFiles {
		return nil, fmt.Errorf("%s: %d files, at most %d", dir, len(names), maxPeerFiles)
	}
	var out []*x509.Certificate
	var errs []error
	for _, name := range names {
		if filepath.Base(name) == own {
			continue
		}
		certs, err := readCerts(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, certs...)
	}
	return out, errors.Join(errs...)
}

func readCerts(name string) ([]*x509.Certificate, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, maxPeerFile+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if n > maxPeerFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxPeerFile)
	}
	rest := buf[:n]
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: a %s block, want only CERTIFICATE", name, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, c)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%s: trailing data that is not PEM", name)
	}
	return out, nil
}

// writeAtomic replaces name with data, never leaving a partial file.
func writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
