package address

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// DefaultPool is where standalone Gateways get their addresses (the agent's
// and `nodemesh translate`'s default): a loopback range, so every Gateway
// can listen on the same port.
var DefaultPool = netip.MustParsePrefix("127.0.100.0/24")

// Allocator assigns Gateway addresses from one pool. Assignments are
// sticky: a Gateway keeps its address while it exists, so other Gateways
// coming and going never move it, and a restarted controller adopts the
// addresses already written in Gateway status instead of reshuffling them.
// Deleting a Gateway frees its address on the next assign.
type Allocator struct {
	pool     netip.Prefix
	assigned map[input.Key]netip.Addr
	seeded   bool
}

// New returns an Allocator for pool. It is not safe for concurrent use.
func New(pool netip.Prefix) *Allocator {
	return &Allocator{pool: pool.Masked(), assigned: map[input.Key]netip.Addr{}}
}

// Pool is the prefix addresses come from.
func (a *Allocator) Pool() netip.Prefix { return a.pool }

// Assign returns the address of every Gateway in gws and, for those that
// get none, why. gws are the Gateways of our classes in the current
// snapshot.
func (a *Allocator) Assign(gws []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string) {
	live := make(map[input.Key]*gwv1.Gateway, len(gws))
	for _, gw := range gws {
		live[input.Key{Namespace: gw.Namespace, Name: gw.Name}] = gw
	}
	if !a.seeded {
		a.seed(live)
		a.seeded = true
	}
	for k := range a.assigned {
		if live[k] == nil {
			delete(a.assigned, k)
		}
	}
	keys := make([]input.Key, 0, len(live))
	for k := range live {
		keys = append(keys, k)
	}
	// Older Gateways first, so a newcomer asking for a taken address loses.
	sort.Slice(keys, func(i, j int) bool {
		ti, tj := live[keys[i]].CreationTimestamp, live[keys[j]].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return keys[i].String() < keys[j].String()
	})
	owner := map[netip.Addr]input.Key{}
	problems := map[input.Key]string{}
	explicit := map[input.Key]bool{}
	// Pass 1: Gateways asking for specific addresses get the first of them
	// that is in the pool and free (keeping the one they have, if it is
	// still asked for).
	for _, k := range keys {
		reqs := requested(live[k])
		if len(reqs) == 0 {
			continue
		}
		explicit[k] = true
		if cur, ok := a.assigned[k]; ok && contains(reqs, cur) && a.pool.Contains(cur) {
			if _, taken := owner[cur]; !taken {
				owner[cur] = k
				continue
			}
		}
		delete(a.assigned, k)
		var why []string
		for _, r := range reqs {
			if !a.pool.Contains(r) {
				why = append(why, fmt.Sprintf("%s is outside the address pool %s", r, a.pool))
				continue
			}
			if o, taken := owner[r]; taken {
				why = append(why, fmt.Sprintf("%s is already used by Gateway %s", r, o))
				continue
			}
			owner[r] = k
			a.assigned[k] = r
			break
		}
		if _, ok := a.assigned[k]; !ok {
			problems[k] = "no requested address can be used: " + strings.Join(why, "; ")
		}
	}
	// Pass 2: keep earlier pool assignments that are still free.
	for _, k := range keys {
		if explicit[k] {
			continue
		}
		if addr, ok := a.assigned[k]; ok {
			if _, taken := owner[addr]; !taken && a.pool.Contains(addr) {
				owner[addr] = k
				continue
			}
			delete(a.assigned, k)
		}
	}
	// Pass 3: new assignments, lowest free address first (skipping the
	// pool's network address).
	next := a.pool.Addr().Next()
	for _, k := range keys {
		if explicit[k] {
			continue
		}
		if _, ok := a.assigned[k]; ok {
			continue
		}
		for next.IsValid() && a.pool.Contains(next) {
			if _, taken := owner[next]; !taken {
				break
			}
			next = next.Next()
		}
		if !next.IsValid() || !a.pool.Contains(next) {
			problems[k] = fmt.Sprintf("address pool %s is exhausted", a.pool)
			continue
		}
		owner[next] = k
		a.assigned[k] = next
	}
	out := make(map[input.Key]netip.Addr, len(a.assigned))
	for k, v := range a.assigned {
		out[k] = v
	}
	return out, problems
}

// seed adopts the addresses Gateways already show in status (written by an
// earlier run of the controller) when they are in the pool.
func (a *Allocator) seed(live map[input.Key]*gwv1.Gateway) {
	for k, gw := range live {
		for _, s := range gw.Status.Addresses {
			if s.Type != nil && *s.Type != gwv1.IPAddressType {
				continue
			}
			if addr, err := netip.ParseAddr(s.Value); err == nil && a.pool.Contains(addr) {
				a.assigned[k] = addr
				break
			}
		}
	}
}

// requested lists the IP addresses a Gateway asks for in spec.addresses.
// Entries of other types, empty values ("any address") and values that do
// not parse are not requests; translation reports the bad ones.
func requested(gw *gwv1.Gateway) []netip.Addr {
	var out []netip.Addr
	for _, a := range gw.Spec.Addresses {
		if a.Type != nil && *a.Type != gwv1.IPAddressType || a.Value == "" {
			continue
		}
		if addr, err := netip.ParseAddr(a.Value); err == nil {
			out = append(out, addr)
		}
	}
	return out
}

func contains(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// OwnGateways lists the Gateways of snap whose GatewayClass names
// controller: the ones that get addresses.
func OwnGateways(snap *input.Snapshot, controller gwv1.GatewayController) []*gwv1.Gateway {
	ours := map[string]bool{}
	for _, gc := range snap.GatewayClasses {
		if gc.Spec.ControllerName == controller {
			ours[gc.Name] = true
		}
	}
	var out []*gwv1.Gateway
	for _, gw := range snap.Gateways {
		if ours[string(gw.Spec.GatewayClassName)] {
			out = append(out, gw)
		}
	}
	return out
}
