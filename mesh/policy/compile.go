package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Options configure a Compiler.
type Options struct {
	// NodeName selects the local endpoints: Pods whose spec.nodeName is
	// NodeName, or empty. With NodeName empty every Pod is local
	// (standalone mode, one node).
	NodeName string
	// ClusterName is the value of the cluster label ("default"): the
	// cluster entity selects workloads carrying it. It must match the
	// identity Manager's.
	ClusterName string
	// Identities allocates identities (default: a Manager with Cilium's
	// default label filter and ClusterName).
	Identities *identity.Manager
	// Listeners say where the proxy's policy listeners bind; every port
	// must be set.
	Listeners Listeners
	// UpstreamMark is the SO_MARK of the proxy's upstream sockets.
	UpstreamMark uint32
	// AccessLogSocket is the agent's access log service socket ("" for
	// none).
	AccessLogSocket string
	// Authentication says the agent runs mutual authentication: it
	// writes auth entries for auth-required rows and reports, per policy,
	// whether its identity source is ready (PolicyStatus.Authenticated
	// marks the policies concerned). Without it a policy that requires
	// authentication is Pending (WaitingForAuthentication): nothing could
	// satisfy its rows.
	Authentication bool
	// IngressEndpoint says this node runs a Gateway and Ingress proxy:
	// policies apply to its virtual endpoint (identity reserved:ingress)
	// and Result.Ingress carries what they say (see doc.go).
	IngressEndpoint bool
	// MaxRowsPerPolicy rejects a policy that would expand to more datapath
	// rows (default 65536, the datapath's default table size).
	MaxRowsPerPolicy int
}

// Listeners are the policy listeners' address and ports.
type Listeners struct {
	Address        string
	IngressHTTP    uint16
	EgressHTTP     uint16
	IngressKafka   uint16
	EgressKafka    uint16
	OriginalSource bool
	// ConntrackMap is the datapath's pinned connection-tracking map ("":
	// no datapath). With it the ingress HTTP policy listener judges
	// peers by the source identity the datapath redirected them with,
	// which a routing listener's connection from the node's own address
	// (a Gateway's, as ingress) needs: its address is the host's.
	ConntrackMap string
}

func (l Listeners) port(d model.Direction, k l7Kind) uint16 {
	switch {
	case d == model.Ingress && k == l7HTTP:
		return l.IngressHTTP
	case d == model.Egress && k == l7HTTP:
		return l.EgressHTTP
	case d == model.Ingress && k == l7Kafka:
		return l.IngressKafka
	}
	return l.EgressKafka
}

// Input is what Compile reads: policies, the workloads they are about,
// the Secrets header matches may name, and the node's own addresses.
type Input struct {
	CiliumNetworkPolicies            []*ciliumv2.CiliumNetworkPolicy
	CiliumClusterwideNetworkPolicies []*ciliumv2.CiliumClusterwideNetworkPolicy
	NetworkPolicies                  []*networkingv1.NetworkPolicy
	Pods                             []*corev1.Pod
	Namespaces                       []*corev1.Namespace
	Secrets                          []*corev1.Secret
	HostIPs                          []netip.Addr
	// Nodes are the cluster's Nodes: the InternalIP and ExternalIP
	// addresses of every Node but this one (Options.NodeName) get the
	// reserved remote-node identity, and every Node's ingress address
	// (IngressIPAnnotation) the reserved ingress identity.
	Nodes []*corev1.Node
}

// FromSnapshot takes the policy-related objects of a snapshot.
func FromSnapshot(s *input.Snapshot, hostIPs []netip.Addr) Input {
	return Input{
		CiliumNetworkPolicies:            s.CiliumNetworkPolicies,
		CiliumClusterwideNetworkPolicies: s.CiliumClusterwideNetworkPolicies,
		NetworkPolicies:                  s.NetworkPolicies,
		Pods:                             s.Pods,
		Namespaces:                       s.Namespaces,
		Secrets:                          s.Secrets,
		HostIPs:                          hostIPs,
		Nodes:                            s.Nodes,
	}
}

// Result is the outcome of one Compile; read-only once returned.
type Result struct {
	// Identities are the identities, endpoints and ipcache of the input.
	Identities *identity.State
	// Local are the endpoints on this node (the datapath's endpoints).
	Local []*identity.Endpoint
	// Datapath is the node's policy table.
	Datapath model.Policy
	// L7 is the proxy's policy; nil when no rule needs the proxy.
	L7 *ir.Policy
	// Ingress is the policy of the node's ingress endpoint, which the
	// Gateway and Ingress listeners enforce; nil when no policy selects it
	// (or without Options.IngressEndpoint).
	Ingress *ir.IngressPolicy
	// Policies report every policy object, sorted by kind, namespace and
	// name.
	Policies []PolicyStatus
	// Cookies maps datapath row cookies to the rules they came from.
	Cookies map[uint32]string
}

// PolicyState says which version of a policy is enforced.
type PolicyState string

const (
	// Enforced: the current version is in force.
	Enforced PolicyState = "Enforced"
	// EnforcedPrevious: the current version was rejected (Error says
	// why); the last accepted version stays in force.
	EnforcedPrevious PolicyState = "EnforcedPrevious"
	// Pending: the current version was accepted but some of its rules
	// are not in force yet; Reason says what they wait for and Message
	// what happens to their traffic meanwhile (it is blocked or the
	// previous rules apply, never let through unchecked).
	Pending PolicyState = "Pending"
	// Rejected: no version of the policy is in force; the endpoints it
	// selects are held closed (Reason FailClosed, see doc.go).
	Rejected PolicyState = "Rejected"
)

// Reasons qualify a state.
const (
	// ReasonFailClosed: the policy (or, for EnforcedPrevious, the part
	// of the current version the previous one does not cover) is
	// rejected and the endpoints it selects are held closed; Message
	// says how.
	ReasonFailClosed = "FailClosed"
	// ReasonWaitingForAuthentication: rules require authentication
	// (authentication.mode required) and no authentication provider runs
	// on this node; the flows they allow stay blocked.
	ReasonWaitingForAuthentication = "WaitingForAuthentication"
	// ReasonWaitingForProxies: the datapath rows wait for the node's
	// proxies to acknowledge the listeners they redirect to (set by the
	// agent); the previous rows are in force.
	ReasonWaitingForProxies = "WaitingForProxies"
	// ReasonDatapathError: the datapath refused the rows (set by the
	// agent); the previous rows are in force.
	ReasonDatapathError = "DatapathError"
	// ReasonProxyRejected: a proxy rejected the L7 configuration (set by
	// the agent); the traffic the policy redirects to the proxy is
	// dropped until a proxy accepts a configuration.
	ReasonProxyRejected = "ProxyRejected"
	// ReasonDNSEnforcedAtL4: the policy is in force, and its DNS rules
	// that allow every name (matchPattern "*") are enforced as the L4
	// allow of their ports: the payload is not checked to be DNS.
	ReasonDNSEnforcedAtL4 = "DNSEnforcedAtL4"
)

// PolicyStatus is the verdict on one policy object.
type PolicyStatus struct {
	Kind      string      `json:"kind"`
	Namespace string      `json:"namespace,omitempty"`
	Name      string      `json:"name"`
	State     PolicyState `json:"state"`
	// Reason and Message qualify State (see the Reason constants).
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Error names the rule and field that made the current version
	// unacceptable.
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Selected counts the local endpoints the enforced version selects,
	// plus those a rejected version holds closed.
	Selected int `json:"selected"`
	// Proxied: some traffic the enforced version allows is redirected
	// to the node's proxy, so the policy depends on the proxy's L7
	// configuration.
	Proxied bool `json:"proxied,omitempty"`
	// Ingress: the enforced version, or what a rejected one holds
	// closed, applies to the node's ingress endpoint (reserved:ingress),
	// whose policy the proxy's Gateway and Ingress listeners enforce
	// (Result.Ingress): like Proxied, it depends on the proxy's
	// configuration, here even without any datapath row.
	Ingress bool `json:"ingress,omitempty"`
	// Authenticated: some traffic the enforced version allows needs
	// mutual authentication, so the policy depends on the node's
	// identity source (set only with Options.Authentication; the agent
	// reports the policy Pending while the source is not ready).
	Authenticated bool `json:"authenticated,omitempty"`
}

// note sets the reason (the first one stays) and appends to the message.
func (ps *PolicyStatus) note(reason, msg string) {
	if ps.Reason == "" {
		ps.Reason = reason
	}
	if msg == "" {
		return
	}
	if ps.Message != "" {
		ps.Message += "; "
	}
	ps.Message += msg
}

// IngressEndpoint reports whether the compiler models the node's ingress
// endpoint (Options.IngressEndpoint).
func (c *Compiler) IngressEndpoint() bool { return c.opts.IngressEndpoint }

// ErrInvalidOptions is returned by New for unusable Options.
var ErrInvalidOptions = errors.New("invalid policy options")

// Compiler turns policies into datapath rows and proxy configuration. It
// remembers the last accepted version of every policy, so a bad update
// keeps the previous version enforced instead of opening the endpoint up.
// Compile calls are serialised; a Compiler may be shared by goroutines.
type Compiler struct {
	opts Options

	mu   sync.Mutex
	good map[source]*parsed
}

// New returns a Compiler.
func New(opts Options) (*Compiler, error) {
	if opts.ClusterName == "" {
		opts.ClusterName = "default"
	}
	if opts.Identities == nil {
		opts.Identities = identity.NewManager(identity.WithClusterName(opts.ClusterName))
	}
	if opts.MaxRowsPerPolicy <= 0 {
		opts.MaxRowsPerPolicy = 65536
	}
	l := opts.Listeners
	if l.Address == "" {
		opts.Listeners.Address = "0.0.0.0"
	} else if _, err := netip.ParseAddr(l.Address); err != nil {
		return nil, fmt.Errorf("%w: listeners.address: %v", ErrInvalidOptions, err)
	}
	if l.IngressHTTP == 0 || l.EgressHTTP == 0 || l.IngressKafka == 0 || l.EgressKafka == 0 {
		return nil, fmt.Errorf("%w: listeners: every policy listener port must be set", ErrInvalidOptions)
	}
	seen := map[uint16]bool{}
	for _, p := range []uint16{l.IngressHTTP, l.EgressHTTP, l.IngressKafka, l.EgressKafka} {
		if seen[p] {
			return nil, fmt.Errorf("%w: listeners: port %d used twice", ErrInvalidOptions, p)
		}
		seen[p] = true
	}
	return &Compiler{opts: opts, good: map[source]*parsed{}}, nil
}

// candidate is one policy object with its current and fallback versions.
type candidate struct {
	src      source
	cur      *parsed
	curErr   error
	previous *parsed
	// scope is what the current version restricts, held closed when it
	// is rejected.
	scope []scopeRule
}

// Compile computes identities, datapath rows and proxy policy for in.
func (c *Compiler) Compile(in Input) *Result {
	c.mu.Lock()
	defer c.mu.Unlock()

	cands := c.parseAll(in)
	var cidrs []netip.Prefix
	for _, cd := range cands {
		for _, v := range []*parsed{cd.cur, cd.previous} {
			if v != nil {
				cidrs = append(cidrs, v.cidrs...)
			}
		}
	}
	st := c.opts.Identities.Resolve(identity.Input{Pods: in.Pods, Namespaces: in.Namespaces, HostIPs: in.HostIPs,
		RemoteNodeIPs: remoteNodeIPs(in.Nodes, c.opts.NodeName), IngressIPs: ingressIPs(in.Nodes), CIDRs: cidrs})
	res := &Result{Identities: st, Cookies: map[uint32]string{}}
	ev := newEvaluator(st, c.opts)
	res.Local = ev.local

	t := newTable()
	good := map[source]*parsed{}
	// owner maps the rules of accepted versions to their policy, for
	// Proxied.
	owner := map[*rule]int{}
	var closed []*contribution
	for _, cd := range cands {
		ps := PolicyStatus{Kind: cd.src.kind, Namespace: cd.src.namespace, Name: cd.src.name, State: Rejected}
		var versions []*parsed
		if cd.cur != nil {
			versions = append(versions, cd.cur)
		} else {
			ps.Error = cd.curErr.Error()
		}
		if cd.previous != nil {
			versions = append(versions, cd.previous)
		}
		// keep: what the enforced previous version speaks for.
		var keep map[groupKey]bool
		for i, v := range versions {
			contribs, selected, err := ev.evaluate(v)
			if err == nil {
				err = t.add(contribs)
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", cd.src, err)
			}
			if err != nil {
				if i == 0 && cd.cur != nil {
					ps.Error = err.Error()
				}
				continue
			}
			good[cd.src] = v
			ps.Selected = selected
			ps.Ingress = appliesToIngress(contribs)
			ps.Warnings = v.warnings
			for _, r := range v.rules {
				owner[r] = len(res.Policies)
			}
			if v == cd.cur {
				ps.State = Enforced
			} else {
				ps.State = EnforcedPrevious
				keep = map[groupKey]bool{}
				for _, c := range contribs {
					keep[groupKey{c.subject, c.rule.dir}] = true
				}
			}
			switch {
			case !hasAuth(contribs):
			case c.opts.Authentication:
				ps.Authenticated = true
			default:
				if ps.State == Enforced {
					ps.State = Pending
				}
				ps.note(ReasonWaitingForAuthentication, "rules require authentication (authentication.mode required) and no authentication provider runs on this node; the flows they allow stay blocked")
			}
			break
		}
		if ps.State == Rejected || ps.State == EnforcedPrevious {
			cs, n := ev.closedScope(cd.src, cd.scope, keep)
			if len(cs) > 0 {
				closed = append(closed, cs...)
				ps.Selected += n
				ps.Ingress = ps.Ingress || appliesToIngress(cs)
				ps.note(ReasonFailClosed, closedMessage(cs))
			}
		}
		res.Policies = append(res.Policies, ps)
	}
	// Markers and deny rows carry no L7 kind, so they never conflict:
	// add cannot fail here.
	_ = t.add(closed)
	c.good = good
	var notes []ingressNote
	res.Ingress, notes = t.takeIngress(ev)
	for _, n := range notes {
		if i, ok := owner[n.rule]; ok {
			res.Policies[i].note(ReasonIngressFailClosed, n.msg)
		}
	}
	// Last, so that a reason about what is blocked or not yet in force
	// stays the policy's Reason.
	for i := range res.Policies {
		ps := &res.Policies[i]
		v := good[source{kind: ps.Kind, namespace: ps.Namespace, name: ps.Name}]
		if v != nil && len(v.dnsAtL4) > 0 {
			ps.note(ReasonDNSEnforcedAtL4, dnsAtL4Message(v.dnsAtL4))
		}
	}
	res.Datapath = t.rows(c.opts.Listeners, res.Cookies)
	res.L7 = t.l7(ev, c.opts)
	for r := range t.proxiedRules() {
		if i, ok := owner[r]; ok {
			res.Policies[i].Proxied = true
		}
	}
	return res
}

// appliesToIngress reports whether some contribution concerns the
// ingress endpoint.
func appliesToIngress(cs []*contribution) bool {
	for _, c := range cs {
		if c.subject == model.IdentityIngress {
			return true
		}
	}
	return false
}

// hasAuth reports whether contributions allow flows only with
// authentication.
func hasAuth(cs []*contribution) bool {
	for _, c := range cs {
		if !c.mark && !c.rule.deny && c.rule.auth {
			return true
		}
	}
	return false
}

// parseAll parses every policy in a fixed order — cluster-wide policies,
// then namespaced ones, then NetworkPolicies, each by namespace and name —
// which is also the order conflicts are resolved in: a later policy that
// conflicts with earlier ones is the one rejected.
func (c *Compiler) parseAll(in Input) []candidate {
	secrets := func(ns, name string) *corev1.Secret {
		for _, s := range in.Secrets {
			if s.Namespace == ns && s.Name == name {
				return s
			}
		}
		return nil
	}
	var out []candidate
	addCand := func(src source, p *parsed, err error, scope func() []scopeRule) {
		cd := candidate{src: src, cur: p, curErr: err}
		if err != nil {
			cd.cur = nil
			cd.curErr = fmt.Errorf("%s: %w", src, err)
			cd.previous = c.good[src]
			cd.scope = scope()
		} else {
			cd.scope = p.scope()
		}
		if prev := c.good[src]; err == nil && prev != nil && prev != p {
			// A valid update can still conflict with other policies;
			// the previous version is the fallback then.
			cd.previous = prev
		}
		out = append(out, cd)
	}
	ccnps := append([]*ciliumv2.CiliumClusterwideNetworkPolicy(nil), in.CiliumClusterwideNetworkPolicies...)
	sort.Slice(ccnps, func(i, j int) bool { return ccnps[i].Name < ccnps[j].Name })
	for _, p := range ccnps {
		src := source{kind: KindCCNP, name: p.Name}
		v, err := parseCilium(src, p.Spec, p.Specs, c.opts.ClusterName, secrets)
		addCand(src, v, err, func() []scopeRule { return scopeCilium(src, p.Spec, p.Specs) })
	}
	cnps := append([]*ciliumv2.CiliumNetworkPolicy(nil), in.CiliumNetworkPolicies...)
	sort.Slice(cnps, func(i, j int) bool { return less(cnps[i].Namespace, cnps[i].Name, cnps[j].Namespace, cnps[j].Name) })
	for _, p := range cnps {
		src := source{kind: KindCNP, namespace: p.Namespace, name: p.Name}
		v, err := parseCilium(src, p.Spec, p.Specs, c.opts.ClusterName, secrets)
		addCand(src, v, err, func() []scopeRule { return scopeCilium(src, p.Spec, p.Specs) })
	}
	knps := append([]*networkingv1.NetworkPolicy(nil), in.NetworkPolicies...)
	sort.Slice(knps, func(i, j int) bool { return less(knps[i].Namespace, knps[i].Name, knps[j].Namespace, knps[j].Name) })
	for _, p := range knps {
		src := source{kind: KindKNP, namespace: p.Namespace, name: p.Name}
		v, err := parseKNP(p)
		addCand(src, v, err, func() []scopeRule { return scopeKNP(p) })
	}
	return out
}

func less(ns1, n1, ns2, n2 string) bool {
	if ns1 != ns2 {
		return ns1 < ns2
	}
	return n1 < n2
}

// remoteNodeIPs are the InternalIP and ExternalIP addresses of every Node
// but the one named self, as Cilium's remote-node identity covers them.
// A Node's addresses come from the API server: one that does not parse is
// skipped.
func remoteNodeIPs(nodes []*corev1.Node, self string) []netip.Addr {
	var out []netip.Addr
	for _, n := range nodes {
		if n == nil || n.Name == self {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// IngressIPAnnotation on a Node names its ingress address(es); see
// model.IngressIPAnnotation.
const IngressIPAnnotation = model.IngressIPAnnotation

// NodeIngressIPs are the valid addresses of n's IngressIPAnnotation that
// lie inside the Node's own Pod CIDRs (spec.podCIDRs, which the control
// plane assigns and a node cannot change): a node may name an address it
// routes as its ingress, never an arbitrary one (another network's, an
// external client's) that every node would then admit as ingress.
func NodeIngressIPs(n *corev1.Node) []netip.Addr {
	if n == nil {
		return nil
	}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	var own []netip.Prefix
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			own = append(own, p.Masked())
		}
	}
	var out []netip.Addr
	for _, a := range model.ParseIngressIPs(n.Annotations[IngressIPAnnotation]) {
		for _, p := range own {
			if p.Contains(a) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

func ingressIPs(nodes []*corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, n := range nodes {
		out = append(out, NodeIngressIPs(n)...)
	}
	return out
}

// dnsAtL4Message says which DNS rules are enforced at L4 and what that
// leaves unchecked.
func dnsAtL4Message(fields []string) string {
	return strings.Join(fields, ", ") + `: DNS rules allowing every name (matchPattern "*") are enforced as an L4 allow of their ports; the payload is not inspected (non-DNS traffic on those ports passes)`
}
