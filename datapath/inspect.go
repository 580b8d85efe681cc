package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/cilium/ebpf"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// LookupIdentities answers, for each address, the identity the datapath
// pinned under pinDir gives it, the way the programs look it up: a local
// endpoint's identity first, then the longest ipcache prefix, world when
// neither holds it. It opens the pinned maps read-only and needs no
// Datapath, so a tool or test can ask what a running agent's node
// enforces without taking the datapath over.
func LookupIdentities(pinDir string, addrs []netip.Addr) (map[netip.Addr]model.Identity, error) {
	dir := filepath.Join(pinDir, mapLayout)
	ro := &ebpf.LoadPinOptions{ReadOnly: true}
	eps, err := ebpf.LoadPinnedMap(filepath.Join(dir, nmbpf.WorkloadMapNmEndpoints), ro)
	if err != nil {
		return nil, fmt.Errorf("opening the pinned endpoint map: %w", err)
	}
	defer eps.Close()
	ipc, err := ebpf.LoadPinnedMap(filepath.Join(dir, nmbpf.WorkloadMapNmIpcache), ro)
	if err != nil {
		return nil, fmt.Errorf("opening the pinned ipcache: %w", err)
	}
	defer ipc.Close()
	out := make(map[netip.Addr]model.Identity, len(addrs))
	for _, a := range addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("looking up %s: invalid address", a)
		}
		var ep nmbpf.WorkloadEndpointInfo
		err := eps.Lookup(nmbpf.WorkloadEndpointKey{Addr: addr16(a)}, &ep)
		if err == nil {
			out[a] = model.Identity(ep.Identity)
			continue
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, fmt.Errorf("looking up %s in the endpoint map: %w", a, err)
		}
		var v nmbpf.WorkloadIpcacheValue
		err = ipc.Lookup(ipcacheKey(netip.PrefixFrom(a, a.BitLen())), &v)
		switch {
		case err == nil:
			out[a] = model.Identity(v.Identity)
		case errors.Is(err, ebpf.ErrKeyNotExist):
			out[a] = model.IdentityWorld
		default:
			return nil, fmt.Errorf("looking up %s in the ipcache: %w", a, err)
		}
	}
	return out, nil
}

// ReadPolicy returns the policy the datapath pinned under pinDir holds,
// read-only like LookupIdentities: what a node enforces right now, for
// tools and for measuring how long a policy change takes to arrive.
func ReadPolicy(pinDir string) (model.Policy, error) {
	dir := filepath.Join(pinDir, mapLayout)
	ro := &ebpf.LoadPinOptions{ReadOnly: true}
	pol, err := ebpf.LoadPinnedMap(filepath.Join(dir, nmbpf.WorkloadMapNmPolicy), ro)
	if err != nil {
		return model.Policy{}, fmt.Errorf("opening the pinned policy map: %w", err)
	}
	defer pol.Close()
	s, err := readPolicySlot(pol)
	if err != nil {
		return model.Policy{}, err
	}
	return s.policy(), nil
}
