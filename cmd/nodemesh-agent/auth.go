package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
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
			x := newPeerExchange(rt.iss, rt.peers, rt.node, rt.log)
			go x.run(ctx)
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
