package identity

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// Identity is a number and the labels it stands for.
type Identity struct {
	ID     model.Identity `json:"id"`
	Labels Labels         `json:"labels"`
}

// Endpoint is a Pod with at least one address.
type Endpoint struct {
	Pod types.NamespacedName `json:"pod"`
	// Node is the Pod's spec.nodeName (empty in standalone files that do
	// not set it).
	Node string `json:"node,omitempty"`
	// HostIP is the Pod's status.hostIP, the address of its node (where
	// that node's agent serves mutual-authentication handshakes); zero
	// when not reported.
	HostIP   netip.Addr     `json:"hostIP,omitzero"`
	Identity model.Identity `json:"identity"`
	// Labels are all the Pod's labels, identity-relevant or not.
	Labels Labels       `json:"labels"`
	IPs    []netip.Addr `json:"ips"`
	// Ports are the Pod's named container ports, for policies that name
	// ports.
	Ports []NamedPort `json:"ports,omitempty"`
}

// NamedPort is a named container port.
type NamedPort struct {
	Name     string `json:"name"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"` // TCP, UDP or SCTP
}

// IPCacheEntry maps a prefix to the identity behind it.
type IPCacheEntry struct {
	Prefix   netip.Prefix   `json:"prefix"`
	Identity model.Identity `json:"identity"`
}

// State is the outcome of one Resolve: read-only once returned.
type State struct {
	// Identities lists every identity in use, reserved ones included,
	// sorted by number.
	Identities []Identity
	// Endpoints are the Pods with addresses, sorted by namespace/name.
	Endpoints []*Endpoint
	// IPCache is sorted by prefix (address, then length).
	IPCache []IPCacheEntry
	// Problems name Pods (or prefixes) that could not be fully handled.
	Problems []string

	byID map[model.Identity]int
}

// Labels returns the labels of an identity.
func (s *State) Labels(id model.Identity) (Labels, bool) {
	i, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	return s.Identities[i].Labels, true
}

// Input is what Resolve reads.
type Input struct {
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
	// HostIPs are the node's own addresses (identity host).
	HostIPs []netip.Addr
	// RemoteNodeIPs are the other nodes' addresses (identity remote-node).
	// An address that is also a host address or a Pod's stays theirs.
	RemoteNodeIPs []netip.Addr
	// IngressIPs are every node's ingress address (identity ingress): the
	// source of the node proxy's connections to Gateway backends. One
	// that is also a host, Pod or node address stays theirs, so a Node's
	// annotation cannot make another's traffic count as ingress.
	IngressIPs []netip.Addr
	// CIDRs are the prefixes policies name; each gets a CIDR identity.
	CIDRs []netip.Prefix
}

// Manager allocates identities. It remembers numbers between calls to
// Resolve, which may come from any goroutine (they are serialised).
type Manager struct {
	filter  *Filter
	cluster string

	mu        sync.Mutex
	workloads Allocator
	cidrs     *allocator
}

// Option configures a Manager.
type Option func(*Manager)

// WithFilter sets the identity-relevant label filter (default
// DefaultFilter()).
func WithFilter(f *Filter) Option { return func(m *Manager) { m.filter = f } }

// WithAllocator sets the workload allocator (default
// NewLocalAllocator()); Kubernetes mode passes the cluster-wide one.
func WithAllocator(a Allocator) Option { return func(m *Manager) { m.workloads = a } }

// WithClusterName sets the value of the cluster label (default
// "default").
func WithClusterName(name string) Option { return func(m *Manager) { m.cluster = name } }

// NewManager returns a Manager with nothing allocated.
func NewManager(opts ...Option) *Manager {
	m := &Manager{filter: DefaultFilter(), cluster: "default",
		workloads: NewLocalAllocator(), cidrs: newAllocator(MinCIDR, MaxCIDR)}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Resolve computes identities, endpoints and the ipcache for in. Label
// sets that disappeared release their numbers.
func (m *Manager) Resolve(in Input) *State {
	st := &State{}
	nsLabels := map[string]map[string]string{}
	for _, ns := range in.Namespaces {
		nsLabels[ns.Name] = ns.Labels
	}

	type pending struct {
		ep  *Endpoint
		key string
		rel Labels
	}
	var eps []pending
	owner := map[netip.Addr]string{}
	for _, h := range in.HostIPs {
		owner[h.Unmap()] = "the node"
	}
	// Other nodes' addresses rank below this node's and below Pods' (a
	// Pod's address that a node also lists stays the Pod's), but above
	// CIDR identities.
	var remote []netip.Addr
	pods := append([]*corev1.Pod(nil), in.Pods...)
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	for _, p := range pods {
		if p == nil || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		name := p.Namespace + "/" + p.Name
		ips, problems := podIPs(p)
		st.Problems = append(st.Problems, problems...)
		kept := ips[:0]
		for _, ip := range ips {
			if o, taken := owner[ip]; taken {
				st.Problems = append(st.Problems, fmt.Sprintf("Pod %s: address %s already belongs to %s; ignored", name, ip, o))
				continue
			}
			owner[ip] = "Pod " + name
			kept = append(kept, ip)
		}
		if len(kept) == 0 {
			continue
		}
		all := m.podLabels(p, nsLabels[p.Namespace])
		rel := m.filter.Apply(all)
		eps = append(eps, pending{
			ep: &Endpoint{Pod: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, Node: p.Spec.NodeName,
				HostIP: hostIP(p), Labels: all, IPs: kept, Ports: namedPorts(p)},
			key: rel.String(), rel: rel,
		})
	}

	for _, r := range in.RemoteNodeIPs {
		r = r.Unmap()
		if _, taken := owner[r]; taken || !r.IsValid() {
			continue
		}
		owner[r] = "a remote node"
		remote = append(remote, r)
	}
	var ingress []netip.Addr
	for _, a := range in.IngressIPs {
		a = a.Unmap()
		if o, taken := owner[a]; taken || !a.IsValid() {
			if taken && o != "a node's ingress" {
				st.Problems = append(st.Problems, fmt.Sprintf("ingress address %s already belongs to %s; ignored", a, o))
			}
			continue
		}
		owner[a] = "a node's ingress"
		ingress = append(ingress, a)
	}
	cidrs, cidrLabels := cidrIdentities(in.CIDRs, owner)

	m.mu.Lock()
	sets := make([]Labels, 0, len(eps))
	seenKey := make(map[string]bool, len(eps))
	for _, e := range eps {
		if !seenKey[e.key] {
			seenKey[e.key] = true
			sets = append(sets, e.rel)
		}
	}
	wl, failed := m.workloads.Allocate(sets)
	ckeys := make([]string, 0, len(cidrs))
	for _, c := range cidrs {
		ckeys = append(ckeys, c.String())
	}
	cl, cfailed := m.cidrs.sync(ckeys)
	m.mu.Unlock()
	failedKeys := make([]string, 0, len(failed))
	for k := range failed {
		failedKeys = append(failedKeys, k)
	}
	sort.Strings(failedKeys)
	for _, k := range failedKeys {
		st.Problems = append(st.Problems, fmt.Sprintf("labels %s: %v; their Pods get no identity", k, failed[k]))
	}
	for _, k := range cfailed {
		st.Problems = append(st.Problems, fmt.Sprintf("prefix %s: %v; it stays world", k, ErrExhausted))
	}

	idents := reservedIdentities()
	seen := map[model.Identity]bool{}
	for _, e := range eps {
		id, ok := wl[e.key]
		if !ok {
			continue
		}
		e.ep.Identity = id
		st.Endpoints = append(st.Endpoints, e.ep)
		if !seen[id] {
			seen[id] = true
			idents = append(idents, Identity{ID: id, Labels: e.rel})
		}
		for _, ip := range e.ep.IPs {
			st.IPCache = append(st.IPCache, IPCacheEntry{Prefix: netip.PrefixFrom(ip, ip.BitLen()), Identity: id})
		}
	}
	for _, h := range in.HostIPs {
		h = h.Unmap()
		st.IPCache = append(st.IPCache, IPCacheEntry{Prefix: netip.PrefixFrom(h, h.BitLen()), Identity: model.IdentityHost})
	}
	for _, r := range remote {
		st.IPCache = append(st.IPCache, IPCacheEntry{Prefix: netip.PrefixFrom(r, r.BitLen()), Identity: model.IdentityRemoteNode})
	}
	for _, a := range ingress {
		st.IPCache = append(st.IPCache, IPCacheEntry{Prefix: netip.PrefixFrom(a, a.BitLen()), Identity: model.IdentityIngress})
	}
	for _, c := range cidrs {
		id, ok := cl[c.String()]
		if !ok {
			continue
		}
		idents = append(idents, Identity{ID: id, Labels: cidrLabels[c]})
		st.IPCache = append(st.IPCache, IPCacheEntry{Prefix: c, Identity: id})
	}
	sort.Slice(idents, func(i, j int) bool { return idents[i].ID < idents[j].ID })
	st.Identities = idents
	st.byID = make(map[model.Identity]int, len(idents))
	for i, id := range idents {
		st.byID[id.ID] = i
	}
	sort.Slice(st.IPCache, func(i, j int) bool {
		a, b := st.IPCache[i].Prefix, st.IPCache[j].Prefix
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	return st
}

// hostIP reads a Pod's status.hostIP; an unparsable one is no address.
func hostIP(p *corev1.Pod) netip.Addr {
	a, err := netip.ParseAddr(p.Status.HostIP)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// PodLabels returns the identity-relevant labels of p (whose Namespace
// has nsLabels), the label set Resolve numbers for it. The controller uses
// it to tell which identities Pods still use.
func (m *Manager) PodLabels(p *corev1.Pod, nsLabels map[string]string) Labels {
	return m.filter.Apply(m.podLabels(p, nsLabels))
}

// podLabels are a Pod's labels with the ones Cilium derives.
func (m *Manager) podLabels(p *corev1.Pod, nsLabels map[string]string) Labels {
	ls := make([]Label, 0, len(p.Labels)+len(nsLabels)+4)
	for k, v := range p.Labels {
		ls = append(ls, Label{Source: SourceK8s, Key: k, Value: v})
	}
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	ls = append(ls,
		Label{Source: SourceK8s, Key: LabelNamespace, Value: p.Namespace},
		Label{Source: SourceK8s, Key: LabelServiceAccount, Value: sa},
		Label{Source: SourceK8s, Key: LabelCluster, Value: m.cluster},
		Label{Source: SourceK8s, Key: LabelNamespaceLabels + "." + LabelNamespaceName, Value: p.Namespace},
	)
	for k, v := range nsLabels {
		if k == LabelNamespaceName {
			continue
		}
		ls = append(ls, Label{Source: SourceK8s, Key: LabelNamespaceLabels + "." + k, Value: v})
	}
	return NewLabels(ls...)
}

// podIPs returns a Pod's valid addresses (status.podIPs, else podIP).
func podIPs(p *corev1.Pod) ([]netip.Addr, []string) {
	var raw []string
	for _, ip := range p.Status.PodIPs {
		raw = append(raw, ip.IP)
	}
	if len(raw) == 0 && p.Status.PodIP != "" {
		raw = append(raw, p.Status.PodIP)
	}
	var ips []netip.Addr
	var problems []string
	seen := map[netip.Addr]bool{}
	for i, s := range raw {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			problems = append(problems, fmt.Sprintf("Pod %s/%s: status.podIPs[%d]: %q is not an IP address; ignored", p.Namespace, p.Name, i, s))
			continue
		}
		a = a.Unmap()
		if !seen[a] {
			seen[a] = true
			ips = append(ips, a)
		}
	}
	return ips, problems
}

func namedPorts(p *corev1.Pod) []NamedPort {
	var out []NamedPort
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			for _, cp := range c.Ports {
				if cp.Name == "" || cp.ContainerPort <= 0 || cp.ContainerPort > 65535 {
					continue
				}
				proto := string(cp.Protocol)
				if proto == "" {
					proto = "TCP"
				}
				out = append(out, NamedPort{Name: cp.Name, Port: uint16(cp.ContainerPort), Protocol: proto})
			}
		}
	}
	return out
}

// cidrIdentities returns the prefixes that get a CIDR identity (masked,
// deduplicated, not /0, not a Pod's or the node's own address) and the
// labels of each.
func cidrIdentities(prefixes []netip.Prefix, owned map[netip.Addr]string) ([]netip.Prefix, map[netip.Prefix]Labels) {
	set := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		p, ok := NormalizePrefix(p)
		if !ok || p.Bits() == 0 {
			continue
		}
		if p.IsSingleIP() {
			if _, taken := owned[p.Addr()]; taken {
				continue
			}
		}
		set[p] = true
	}
	all := make([]netip.Prefix, 0, len(set))
	for p := range set {
		all = append(all, p)
	}
	sort.Slice(all, func(i, j int) bool {
		if c := all[i].Addr().Compare(all[j].Addr()); c != 0 {
			return c < 0
		}
		return all[i].Bits() < all[j].Bits()
	})
	labels := make(map[netip.Prefix]Labels, len(all))
	for _, p := range all {
		ls := []Label{{Source: SourceReserved, Key: "world"}}
		for _, q := range all {
			if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				ls = append(ls, Label{Source: SourceCIDR, Key: q.String()})
			}
		}
		labels[p] = NewLabels(ls...)
	}
	return all, labels
}

// NormalizePrefix masks p and turns an IPv4-mapped IPv6 prefix into its
// IPv4 form, the shape CIDR identities and their labels use. It reports
// false for an invalid prefix or a mapped one shorter than /96.
func NormalizePrefix(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// CIDRLabel is the label a CIDR identity carries for prefix p.
// (normalised as NormalizePrefix does).
func CIDRLabel(p netip.Prefix) Label {
	n, _ := NormalizePrefix(p)
	return Label{Source: SourceCIDR, Key: n.String()}
}
