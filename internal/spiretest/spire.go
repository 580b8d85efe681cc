package spiretest

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/nodemesh/nodemesh/auth/spire"
	"github.com/nodemesh/nodemesh/internal/child"
)

// maxSocketPath is the longest Unix socket path Linux accepts
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// ServerOptions configure a Server.
type ServerOptions struct {
	// Binaries to run. Required.
	Binaries *Binaries
	// Dir holds configuration, data, sockets and logs. Required; the
	// caller removes it. Keep it short: socket paths below it must fit
	// in 107 bytes.
	Dir string
	// TrustDomain of the server. Required.
	TrustDomain spiffeid.TrustDomain
	// SVIDTTL is default_x509_svid_ttl (default 1h). Agents renew an
	// SVID at half its life, so a short one makes rotation observable.
	SVIDTTL time.Duration
}

// Server is a running spire-server: SQLite datastore and in-memory CA key
// under Dir, join-token node attestation, its TCP API for agents on a free
// loopback port and its admin API on a Unix socket.
type Server struct {
	TrustDomain spiffeid.TrustDomain
	// Socket is the admin API socket (socket_path).
	Socket string
	// Port is the loopback TCP port agents connect to.
	Port int

	bins   *Binaries
	dir    string
	proc   *child.Process
	conn   *grpc.ClientConn
	agents []*Agent
}

// StartServer starts spire-server and waits until its API answers.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	if o.Binaries == nil || o.Dir == "" || o.TrustDomain.IsZero() {
		return nil, errors.New("starting SPIRE server: binaries, directory and trust domain required")
	}
	if o.SVIDTTL == 0 {
		o.SVIDTTL = time.Hour
	}
	dir := filepath.Join(o.Dir, "server")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("starting SPIRE server: %w", err)
	}
	s := &Server{TrustDomain: o.TrustDomain, Socket: filepath.Join(dir, "api.sock"), bins: o.Binaries, dir: o.Dir}
	if len(s.Socket) > maxSocketPath {
		return nil, fmt.Errorf("starting SPIRE server: socket path %s is longer than %d bytes", s.Socket, maxSocketPath)
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("starting SPIRE server: %w", err)
	}
	s.Port = port
	// ca_ttl is far above every SVID lifetime a test uses, so no CA
	// rotation happens during a test; agent_ttl keeps the agents' own
	// SVIDs out of the rotation a short SVID lifetime causes.
	conf := fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = %q
  trust_domain = %q
  data_dir = %q
  log_level = "DEBUG"
  default_x509_svid_ttl = %q
  agent_ttl = "1h"
  ca_ttl = "24h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = %q
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`, port, s.Socket, o.TrustDomain.Name(), filepath.Join(dir, "data"), o.SVIDTTL.String(), filepath.Join(dir, "data", "datastore.sqlite3"))
	confPath := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("starting SPIRE server: %w", err)
	}
	s.proc, err = child.Start("spire-server", filepath.Join(dir, "server.log"), exec.Command(o.Binaries.Server, "run", "-config", confPath))
	if err != nil {
		return nil, fmt.Errorf("starting SPIRE server: %w", err)
	}
	if err := waitSocket(ctx, s.proc, s.Socket); err != nil {
		s.proc.Stop(0)
		return nil, fmt.Errorf("starting SPIRE server: %w", err)
	}
	if s.conn, err = spire.DialServer(s.Socket); err != nil {
		s.proc.Stop(0)
		return nil, fmt.Errorf("starting SPIRE server: %w", err)
	}
	return s, nil
}

// Conn is an admin connection to the server's API (its Unix socket).
func (s *Server) Conn() *grpc.ClientConn { return s.conn }

// Entries is the server's Entry API.
func (s *Server) Entries() entryv1.EntryClient { return entryv1.NewEntryClient(s.conn) }

// Stop stops every agent and the server.
func (s *Server) Stop() {
	for _, a := range s.agents {
		a.Stop()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	s.proc.Stop(5 * time.Second)
}

// Halt stops the server process alone, leaving its agents running: a
// server outage as the agents see it (they cannot renew SVIDs). The
// server is not started again; Stop still stops the agents.
func (s *Server) Halt() {
	s.proc.Stop(5 * time.Second)
}

// Logs returns the last n lines of the server's and every agent's log.
func (s *Server) Logs(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- spire-server (%s)\n%s\n", s.proc.LogPath(), s.proc.LogTail(n))
	for _, a := range s.agents {
		fmt.Fprintf(&b, "--- spire-agent %s (%s)\n%s\n", a.Name, a.proc.LogPath(), a.proc.LogTail(n))
	}
	return b.String()
}

// AgentOptions configure an Agent.
type AgentOptions struct {
	// Name of the node; the agent's alias is
	// spiffe://<td>/nodemesh/node/<name>.
	Name string
	// AuthorizedDelegates are the SPIFFE IDs that may use the admin
	// socket's Delegated Identity API.
	AuthorizedDelegates []spiffeid.ID
}

// Agent is a running spire-agent attested with a join token: the unix
// workload attestor, the Workload API and the admin API (Delegated
// Identity) on Unix sockets, its key and SVID on disk so Restart keeps its
// identity.
type Agent struct {
	Name string
	// Alias is the node alias the join token registered; entries for
	// workloads of this node name it as their parent.
	Alias spiffeid.ID
	// AdminSocket serves the Delegated Identity API.
	AdminSocket string

	server   *Server
	confPath string
	logPath  string
	proc     *child.Process
}

// StartAgent creates a join token (which registers the node alias),
// starts a spire-agent with it and waits until it attested and serves its
// admin socket.
func (s *Server) StartAgent(ctx context.Context, o AgentOptions) (*Agent, error) {
	if o.Name == "" || strings.ContainsAny(o.Name, "/ ") {
		return nil, fmt.Errorf("starting SPIRE agent: bad name %q", o.Name)
	}
	alias, err := spiffeid.FromSegments(s.TrustDomain, "nodemesh", "node", o.Name)
	if err != nil {
		return nil, fmt.Errorf("starting SPIRE agent %s: %w", o.Name, err)
	}
	dir := filepath.Join(s.dir, "agent-"+o.Name)
	for _, d := range []string{"data", "admin", "workload"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("starting SPIRE agent %s: %w", o.Name, err)
		}
	}
	a := &Agent{Name: o.Name, Alias: alias, AdminSocket: filepath.Join(dir, "admin", "admin.sock"), server: s,
		confPath: filepath.Join(dir, "agent.conf"), logPath: filepath.Join(dir, "agent.log")}
	if len(a.AdminSocket) > maxSocketPath {
		return nil, fmt.Errorf("starting SPIRE agent %s: socket path %s is longer than %d bytes", o.Name, a.AdminSocket, maxSocketPath)
	}
	tok, err := agentv1.NewAgentClient(s.conn).CreateJoinToken(ctx, &agentv1.CreateJoinTokenRequest{
		Ttl: 600, AgentId: &types.SPIFFEID{TrustDomain: s.TrustDomain.Name(), Path: alias.Path()},
	})
	if err != nil {
		return nil, fmt.Errorf("starting SPIRE agent %s: creating join token: %w", o.Name, err)
	}
	// The agent trusts the server through its bundle, fetched here over
	// the admin socket, rather than insecure_bootstrap.
	b, err := bundlev1.NewBundleClient(s.conn).GetBundle(ctx, &bundlev1.GetBundleRequest{})
	if err != nil {
		return nil, fmt.Errorf("starting SPIRE agent %s: fetching the server's bundle: %w", o.Name, err)
	}
	var pemBundle []byte
	for _, c := range b.GetX509Authorities() {
		pemBundle = append(pemBundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.GetAsn1()})...)
	}
	bundlePath := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundlePath, pemBundle, 0o600); err != nil {
		return nil, fmt.Errorf("starting SPIRE agent %s: %w", o.Name, err)
	}
	delegates := make([]string, 0, len(o.AuthorizedDelegates))
	for _, d := range o.AuthorizedDelegates {
		delegates = append(delegates, fmt.Sprintf("%q", d.String()))
	}
	// sync_interval 1s (default 5s) makes entry changes reach the agent
	// within a second.
	conf := fmt.Sprintf(`agent {
  data_dir = %q
  log_level = "DEBUG"
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = %q
  admin_socket_path = %q
  trust_domain = %q
  trust_bundle_path = %q
  join_token = %q
  authorized_delegates = [%s]
  experimental {
    sync_interval = "1s"
  }
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "disk" {
    plugin_data {
      directory = %q
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`, filepath.Join(dir, "data"), s.Port, filepath.Join(dir, "workload", "agent.sock"), a.AdminSocket,
		s.TrustDomain.Name(), bundlePath, tok.GetValue(), strings.Join(delegates, ", "), filepath.Join(dir, "data"))
	if err := os.WriteFile(a.confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("starting SPIRE agent %s: %w", o.Name, err)
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	s.agents = append(s.agents, a)
	return a, nil
}

// Start (re)starts a stopped agent with its configuration and waits for
// its admin socket. A restarted agent keeps its identity (key and SVID on
// disk) and does not attest again.
func (a *Agent) Start(ctx context.Context) error {
	if a.proc != nil {
		select {
		case <-a.proc.Done():
		default:
			return fmt.Errorf("starting SPIRE agent %s: already running", a.Name)
		}
	}
	// A socket file left by a killed agent would answer nothing but
	// would make the wait below look at a stale path.
	_ = os.Remove(a.AdminSocket)
	p, err := child.Start("spire-agent "+a.Name, a.logPath, exec.Command(a.server.bins.Agent, "run", "-config", a.confPath))
	if err != nil {
		return fmt.Errorf("starting SPIRE agent %s: %w", a.Name, err)
	}
	a.proc = p
	if err := waitSocket(ctx, p, a.AdminSocket); err != nil {
		p.Stop(0)
		return fmt.Errorf("starting SPIRE agent %s: %w", a.Name, err)
	}
	return nil
}

// Stop stops the agent (SIGTERM, then SIGKILL after 5 s).
func (a *Agent) Stop() {
	if a.proc != nil {
		a.proc.Stop(5 * time.Second)
	}
}

// Register creates a workload entry under this node's alias: spiffeID for
// processes matching every selector ("type:value"). It returns the entry
// ID.
func (a *Agent) Register(ctx context.Context, spiffeID spiffeid.ID, selectors ...string) (string, error) {
	e := &types.Entry{
		SpiffeId: &types.SPIFFEID{TrustDomain: spiffeID.TrustDomain().Name(), Path: spiffeID.Path()},
		ParentId: &types.SPIFFEID{TrustDomain: a.Alias.TrustDomain().Name(), Path: a.Alias.Path()},
	}
	for _, sel := range selectors {
		typ, val, ok := strings.Cut(sel, ":")
		if !ok {
			return "", fmt.Errorf("registering %s: selector %q is not type:value", spiffeID, sel)
		}
		e.Selectors = append(e.Selectors, &types.Selector{Type: typ, Value: val})
	}
	resp, err := a.server.Entries().BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{Entries: []*types.Entry{e}})
	if err != nil {
		return "", fmt.Errorf("registering %s: %w", spiffeID, err)
	}
	res := resp.GetResults()
	if len(res) != 1 {
		return "", fmt.Errorf("registering %s: %d results", spiffeID, len(res))
	}
	if c := codes.Code(res[0].GetStatus().GetCode()); c != codes.OK {
		return "", fmt.Errorf("registering %s: %s: %s", spiffeID, c, res[0].GetStatus().GetMessage())
	}
	return res[0].GetEntry().GetId(), nil
}
