package controller

import (
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// WithHostNetwork serves every Gateway of ours in host-network mode: no
// Service is created (Services a Gateway got before are deleted), the
// node proxies of the Nodes nodes selects (labels.Everything() for all)
// listen on their Node's address at each listener's port, and the
// Gateway's status.addresses lists those addresses (hostnet.go). It wins
// over WithGatewayServices.
func WithHostNetwork(nodes labels.Selector) Option {
	return func(c *Controller) { c.hostNetwork = nodes }
}

// WithIngressHostNetwork serves every Ingress of ours in host-network
// mode (gateway.IngressOptions.HostNetwork), independently of the
// Gateways' mode: no Ingress Service is created (those made before are
// deleted), the node proxies of the Nodes nodes selects listen on their
// Node's address, and each served Ingress's status.loadBalancer lists
// those addresses. An IngressOptions with HostNetwork set and no selector
// selects every Node.
func WithIngressHostNetwork(nodes labels.Selector) Option {
	return func(c *Controller) { c.ingressHostNetwork = nodes }
}

// hostNode is one Node selected for host-network Gateways or Ingresses.
type hostNode struct {
	name string
	addr netip.Addr
}

// startNodeInformer watches Nodes for host-network mode.
func (c *Controller) startNodeInformer() {
	c.nodeInformers = informers.NewSharedInformerFactory(c.core, 0)
	c.nodeObjects = c.nodeInformers.Core().V1().Nodes().Informer()
	signal := func(any) {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	_, _ = c.nodeObjects.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: signal, DeleteFunc: signal,
		UpdateFunc: func(old, cur any) {
			// Only labels and addresses decide selection; kubelet's
			// status heartbeats change neither.
			o, ok1 := old.(*corev1.Node)
			n, ok2 := cur.(*corev1.Node)
			if !ok1 || !ok2 || !labels.Equals(o.Labels, n.Labels) || nodeAddress(o) != nodeAddress(n) {
				signal(cur)
			}
		},
	})
}

// hostNodes returns the Nodes sel selects that have an address, by name.
func (c *Controller) hostNodes(sel labels.Selector) []hostNode {
	var out []hostNode
	for _, o := range c.nodeObjects.GetStore().List() {
		n, ok := o.(*corev1.Node)
		if !ok || !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		if a := nodeAddress(n); a.IsValid() {
			out = append(out, hostNode{name: n.Name, addr: a})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// nodeAddress is the Node's first InternalIP: the address kubelet
// reports as the node's own, which its proxy can bind (the proxy runs in
// the node's network namespace). ExternalIPs are often not on any of the
// node's interfaces (cloud NAT), so they are not used.
func nodeAddress(n *corev1.Node) netip.Addr {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if addr, err := netip.ParseAddr(a.Address); err == nil {
			return addr.Unmap()
		}
	}
	return netip.Addr{}
}

// hostNetworkAddresses gives every Gateway (or Ingress stand-in, see
// gateway.IngressAddressRequests) the address translation checks port
// clashes with: the first selected node's. Every node's agent gives every
// host-network Gateway its own node's address, so on every node the same
// Gateways share one address and the same older Gateway keeps a contested
// port; the controller's translation, on one node's address, reaches the
// same verdicts.
func hostNetworkAddresses(own []*gwv1.Gateway, nodes []hostNode, sel labels.Selector) (map[input.Key]netip.Addr, map[input.Key]string) {
	addrs := map[input.Key]netip.Addr{}
	problems := map[input.Key]string{}
	for _, gw := range own {
		key := input.Key{Namespace: gw.Namespace, Name: gw.Name}
		if len(nodes) == 0 {
			problems[key] = fmt.Sprintf("host-network mode: no Node with an InternalIP address among %s", describeSelector(sel))
			continue
		}
		addrs[key] = nodes[0].addr
	}
	return addrs, problems
}

// hostNetworkStatus replaces the one address translation put in a
// Gateway's status by the address of every selected node: where its
// listeners are served.
func hostNetworkStatus(st *gwv1.GatewayStatus, nodes []hostNode) {
	if len(st.Addresses) == 0 {
		return
	}
	addrs := hostAddresses(nodes)
	st.Addresses = make([]gwv1.GatewayStatusAddress, 0, len(addrs))
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, gwv1.GatewayStatusAddress{Type: ptrTo(gwv1.IPAddressType), Value: a.String()})
	}
}

// hostAddresses are the distinct addresses of the selected nodes, in
// Node name order, at most maxStatusAddresses: what a host-network
// Gateway's status.addresses and Ingress's status.loadBalancer list.
func hostAddresses(nodes []hostNode) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, n := range nodes {
		if seen[n.addr] {
			continue
		}
		seen[n.addr] = true
		out = append(out, n.addr)
		if len(out) == maxStatusAddresses {
			break
		}
	}
	return out
}

// maxStatusAddresses is the API's bound on Gateway status.addresses; the
// Ingress status is given the same, so neither grows with the cluster.
const maxStatusAddresses = 16

// selectedReports keeps the reports of the selected nodes: the others do
// not serve host-network Gateways, so their verdict does not count.
func selectedReports(reports []nodeReport, nodes []hostNode) []nodeReport {
	in := map[string]bool{}
	for _, n := range nodes {
		in[n.name] = true
	}
	var out []nodeReport
	for _, r := range reports {
		if in[r.node] {
			out = append(out, r)
		}
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

// describeSelector is the selector as messages show it.
func describeSelector(s labels.Selector) string {
	if s.Empty() {
		return "every node"
	}
	return fmt.Sprintf("nodes matching %q", s.String())
}
