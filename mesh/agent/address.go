package agent

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/nodemesh/nodemesh/mesh/input"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// addressAllocator hands out Gateway addresses from a pool. Assignments are
// sticky: a Gateway keeps its address for as long as it exists, so adding
// or removing another Gateway never moves it. A Gateway that asks for a
// specific address in spec.addresses gets exactly that address or none.
type addressAllocator struct {
	pool     netip.Prefix
	assigned map[input.Key]netip.Addr
}

func newAddressAllocator(pool netip.Prefix) *addressAllocator {
	return &addressAllocator{pool: pool.Masked(), assigned: map[input.Key]netip.Addr{}}
}

// assign returns the address of every Gateway in gws, and for Gateways that
// could not get one, why. Gateways absent from gws release their address.
func (a *addressAllocator) assign(gws []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string) {
	live := map[input.Key]*gwv1.Gateway{}
	for _, gw := range gws {
		live[input.Key{Namespace: gw.Namespace, Name: gw.Name}] = gw
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
	// Pass 1: explicit requests.
	for _, k := range keys {
		req, ok, msg := requested(live[k])
		if msg != "" {
			problems[k] = msg
			delete(a.assigned, k)
			continue
		}
		if !ok {
			continue
		}
		if o, taken := owner[req]; taken {
			problems[k] = fmt.Sprintf("address %s is already used by Gateway %s", req, o)
			delete(a.assigned, k)
			continue
		}
		owner[req] = k
		a.assigned[k] = req
	}
	// Pass 2: keep earlier pool assignments that are still free.
	for _, k := range keys {
		if _, explicit, _ := requested(live[k]); explicit || problems[k] != "" {
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
	// Pass 3: new assignments from the pool, lowest free address first.
	next := a.pool.Addr().Next()
	for _, k := range keys {
		if _, explicit, _ := requested(live[k]); explicit || problems[k] != "" {
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

// requested returns the address a Gateway asks for in spec.addresses, if
// any, or a message when the request cannot be honoured here: only one
// IPAddress, and only a loopback address, since standalone Gateways listen
// on this machine's loopback interface.
func requested(gw *gwv1.Gateway) (netip.Addr, bool, string) {
	if len(gw.Spec.Addresses) == 0 {
		return netip.Addr{}, false, ""
	}
	if len(gw.Spec.Addresses) > 1 {
		return netip.Addr{}, false, "only one address per Gateway is supported"
	}
	a := gw.Spec.Addresses[0]
	if a.Value == "" {
		return netip.Addr{}, false, "" // "any address": the pool decides
	}
	if a.Type != nil && *a.Type != gwv1.IPAddressType {
		return netip.Addr{}, false, fmt.Sprintf("address type %q is not supported; use IPAddress", *a.Type)
	}
	addr, err := netip.ParseAddr(a.Value)
	if err != nil {
		return netip.Addr{}, false, fmt.Sprintf("spec.addresses[0].value %q is not an IP address", a.Value)
	}
	if !addr.IsLoopback() {
		return netip.Addr{}, false, fmt.Sprintf("spec.addresses[0].value %s is not a loopback address", addr)
	}
	return addr, true, ""
}
