package datapath

import (
	"log/slog"
)

// DefaultPinDir is where the datapath pins its maps and links. It must be
// on a bpf filesystem; New mounts one at /sys/fs/bpf when nothing is there.
const DefaultPinDir = "/sys/fs/bpf/nodemesh"

// AttachMode selects how programs are attached to interfaces.
type AttachMode uint8

const (
	// AttachAuto uses TCX links and falls back to tc clsact filters on
	// kernels without TCX (before Linux 6.6).
	AttachAuto AttachMode = iota
	// AttachTCX requires TCX links.
	AttachTCX
	// AttachTC uses tc clsact filters even where TCX exists.
	AttachTC
)

func (m AttachMode) String() string {
	switch m {
	case AttachAuto:
		return "auto"
	case AttachTCX:
		return "tcx"
	case AttachTC:
		return "tc"
	}
	return "unknown"
}

// MapSizes overrides map capacities; zero fields keep the defaults
// (endpoints 4096, ipcache 65536, policy 65536, auth 524288,
// conntrack 262144, fragments 8192, event ring 1 MiB, service slots
// 65536, socket reverse translations 262144, service ranges 65536).
type MapSizes struct {
	Endpoints uint32
	IPCache   uint32
	// Policy holds the rule rows plus one row per enforced identity.
	Policy     uint32
	Auth       uint32
	Conntrack  uint32
	Fragments  uint32
	EventBytes uint32 // power of two, at least one page
	Services   uint32 // frontends plus backends of every Service
	RevNAT     uint32
	// ServiceRanges holds the ServiceCIDRs and every ClusterIP.
	ServiceRanges uint32
}

// EnforcementMode is the node-wide policy enforcement mode (Cilium's
// policy-enforcement-mode).
type EnforcementMode uint32

const (
	// EnforceDefault: an identity is default-deny in a direction once a
	// policy selects it (Policy.Enforce).
	EnforceDefault EnforcementMode = 0
	// EnforceAlways: every managed endpoint is default-deny.
	EnforceAlways EnforcementMode = 1
	// EnforceNever: policy rows are ignored.
	EnforceNever EnforcementMode = 2
)

type options struct {
	pinDir     string
	netns      string
	attachMode AttachMode
	sizes      MapSizes
	log        *slog.Logger
	routing    bool
	proxyCTID  bool
}

// Option configures New.
type Option func(*options)

// WithPinDir sets the bpffs directory holding the datapath's pinned maps
// and links. Two datapaths must never share one.
func WithPinDir(dir string) Option { return func(o *options) { o.pinDir = dir } }

// WithNetNS makes the datapath manage the interfaces and routing of the
// network namespace at path (e.g. /run/netns/node) instead of the caller's.
func WithNetNS(path string) Option { return func(o *options) { o.netns = path } }

// WithAttachMode selects TCX, tc or automatic attachment.
func WithAttachMode(m AttachMode) Option { return func(o *options) { o.attachMode = m } }

// WithMapSizes overrides map capacities.
func WithMapSizes(s MapSizes) Option { return func(o *options) { o.sizes = s } }

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithProxyIdentity says the node proxy's policy listeners read each
// redirected connection's source identity from connection tracking (the
// pinned map at ConntrackPin, which nodemesh-proxy reads): a routing
// listener's connection whose marked identity its source address lacks
// (a Gateway's from the node's own address) is then redirected to them
// rather than dropped (DropRouteIdentity). Leave it off for a proxy that
// judges peers by address only (Envoy).
func WithProxyIdentity() Option { return func(o *options) { o.proxyCTID = true } }

// WithoutRouting skips installing the policy routing rules that deliver
// redirected packets to local proxy sockets, for callers that manage them
// themselves.
func WithoutRouting() Option { return func(o *options) { o.routing = false } }
