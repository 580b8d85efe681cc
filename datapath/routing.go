package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// A packet assigned to a proxy socket still carries the original
// destination, which is not a local address; without help the stack would
// forward it. The datapath marks such packets (MarkToProxy) and one policy
// rule per family sends marked packets to a table whose only route says
// "everything is local". This is the whole routing footprint: no iptables.
const (
	// RouteTable is the routing table holding the local default routes.
	RouteTable = 2250
	// RulePriority is the priority of the fwmark rule: after the local
	// table's rule (0), before main (32766).
	RulePriority = 90
	// MarkToProxy and MarkMagicMask are the mark the programs set on
	// packets they assigned to a proxy socket, and the bits compared.
	MarkToProxy   = 0x0200
	MarkMagicMask = 0x0F00
	// MarkFromProxy is the magic of the mark of a policy listener's
	// upstream sockets (see ProxyMark).
	MarkFromProxy = 0x0A00
	// MarkFromProxyRoute is the magic of the mark of a routing
	// listener's upstream sockets (see ProxyRouteMark).
	MarkFromProxyRoute = 0x0B00
)

// ProxyMark returns the SO_MARK of an upstream socket of the node proxy's
// policy listeners, opened on behalf of a source identity: the datapath
// judges the connection as coming from that identity, and never redirects
// it to the proxy again (the policy listener applied the destination's L7
// ingress rules already). Identity 0 means "take the identity from the
// source address". It matches proxylib/transparent.UpstreamMark.
func ProxyMark(source model.Identity) (uint32, error) {
	return proxyMark(MarkFromProxy, source)
}

// ProxyRouteMark returns the SO_MARK of an upstream socket of a listener
// that applies no L7 ingress policy (Gateway, Ingress, GAMMA,
// CiliumEnvoyConfig, lb-l7 listeners): the datapath judges the connection
// as coming from source (0: from its source address) and, where the
// destination's ingress policy has L7 rules, hands it to the ingress
// policy listener. It matches proxylib/transparent.RouteUpstreamMark.
func ProxyRouteMark(source model.Identity) (uint32, error) {
	return proxyMark(MarkFromProxyRoute, source)
}

func proxyMark(magic uint32, source model.Identity) (uint32, error) {
	if source > model.MaxMarkIdentity {
		return 0, fmt.Errorf("identity %d does not fit in a socket mark (max %d)", source, model.MaxMarkIdentity)
	}
	id := uint32(source)
	return magic | (id&0xFFFF)<<16 | id>>16, nil
}

func routingRules() []*netlink.Rule {
	var rules []*netlink.Rule
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		r := netlink.NewRule()
		r.Family = fam
		r.Priority = RulePriority
		r.Mark = MarkToProxy
		mask := uint32(MarkMagicMask)
		r.Mask = &mask
		r.Table = RouteTable
		rules = append(rules, r)
	}
	return rules
}

func (d *Datapath) routingRoutes() ([]*netlink.Route, error) {
	lo, err := d.nl.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("finding loopback interface: %w", err)
	}
	_, any4, _ := net.ParseCIDR("0.0.0.0/0")
	_, any6, _ := net.ParseCIDR("::/0")
	var routes []*netlink.Route
	for _, dst := range []*net.IPNet{any4, any6} {
		routes = append(routes, &netlink.Route{
			LinkIndex: lo.Attrs().Index,
			Dst:       dst,
			Table:     RouteTable,
			Type:      unix.RTN_LOCAL,
			Scope:     netlink.SCOPE_HOST,
		})
	}
	return routes, nil
}

// migrateReqSysctl makes a closing listener hand the connections in its
// accept queue to another listener of its SO_REUSEPORT group instead of
// resetting them (Linux 5.14+), per network namespace.
const migrateReqSysctl = "/proc/sys/net/ipv4/tcp_migrate_req"

// installRouting adds the rules and routes if they are missing and turns
// on accept-queue migration for the proxy's listener groups. Running it
// again changes nothing. It runs inside the node namespace.
func (d *Datapath) installRouting() error {
	switch err := os.WriteFile(migrateReqSysctl, []byte("1"), 0o644); {
	case errors.Is(err, fs.ErrNotExist):
		d.log.Warn("kernel without net.ipv4.tcp_migrate_req (Linux < 5.14): connections queued on a closing proxy listener are reset")
	case err != nil:
		// Tuning, not enforcement: a read-only /proc/sys must not keep
		// the datapath from starting.
		d.log.Warn("cannot turn on net.ipv4.tcp_migrate_req: connections queued on a closing proxy listener are reset", "error", err)
	}
	routes, err := d.routingRoutes()
	if err != nil {
		return err
	}
	for _, r := range routes {
		if err := d.nl.RouteReplace(r); err != nil {
			return fmt.Errorf("adding local route %s to table %d: %w", r.Dst, RouteTable, err)
		}
	}
	for _, want := range routingRules() {
		have, err := d.hasRule(want)
		if err != nil {
			return err
		}
		if have {
			continue
		}
		if err := d.nl.RuleAdd(want); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding fwmark rule to table %d: %w", RouteTable, err)
		}
	}
	return nil
}

func (d *Datapath) hasRule(want *netlink.Rule) (bool, error) {
	rules, err := d.nl.RuleList(want.Family)
	if err != nil {
		return false, fmt.Errorf("listing routing rules: %w", err)
	}
	for _, r := range rules {
		if r.Priority == want.Priority && r.Table == want.Table && r.Mark == want.Mark &&
			r.Mask != nil && *r.Mask == *want.Mask {
			return true, nil
		}
	}
	return false, nil
}

// removeRouting deletes the rules and routes; missing ones are fine.
func (d *Datapath) removeRouting() error {
	var errs []error
	for _, r := range routingRules() {
		for {
			have, err := d.hasRule(r)
			if err != nil || !have {
				errs = append(errs, err)
				break
			}
			if err := d.nl.RuleDel(r); err != nil {
				errs = append(errs, fmt.Errorf("removing fwmark rule: %w", err))
				break
			}
		}
	}
	routes, err := d.routingRoutes()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, r := range routes {
		if err := d.nl.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing local route %s: %w", r.Dst, err))
		}
	}
	return errors.Join(errs...)
}
