package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/workload"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/agent"
)

// maxNetnsFiles bounds one scan of the namespace directory.
const maxNetnsFiles = 4096

// netnsAttestor attests Workload API callers: the caller's network
// namespace is found among the named namespaces in dir (where the
// container runtime, or the lab, bind-mounts every Pod's namespace), its
// addresses are read, and the local endpoint with one of them is the
// caller. A namespace with no local Pod address is nobody's.
//
// Nothing is cached: addresses are read on every call, so a namespace
// whose inode is reused, or a Pod whose addresses changed, is judged by
// what it holds now. A caller is refused when its addresses belong to
// more than one identity, or when another namespace in dir holds the same
// Pod address: a process able to add addresses in its own namespace could
// otherwise claim another Pod's identity by adding that Pod's address.
type netnsAttestor struct {
	dir string
	a   localIdentities
	log *slog.Logger
}

// localIdentities is the agent's table of local Pod addresses.
type localIdentities interface {
	LocalIdentityOf(netip.Addr) (model.Identity, bool)
}

var _ localIdentities = (*agent.Agent)(nil)

var _ workload.Attestor = (*netnsAttestor)(nil)

func (n *netnsAttestor) Attest(ns workload.NetNS) (auth.Identity, bool) {
	id, err := n.attest(ns)
	if err != nil {
		n.log.Warn("refusing a Workload API caller", "netns", ns, "error", err)
		return 0, false
	}
	return id, true
}

func (n *netnsAttestor) attest(want workload.NetNS) (auth.Identity, error) {
	names, err := os.ReadDir(n.dir)
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", n.dir, err)
	}
	if len(names) > maxNetnsFiles {
		return 0, fmt.Errorf("%s holds more than %d entries", n.dir, maxNetnsFiles)
	}
	var paths []string
	callerPath := ""
	for _, e := range names {
		path := filepath.Join(n.dir, e.Name())
		ns, err := workload.NetNSOfPath(path)
		if err != nil {
			continue // gone meanwhile, or not a namespace
		}
		if ns == want {
			callerPath = path
			continue
		}
		paths = append(paths, path)
	}
	if callerPath == "" {
		return 0, fmt.Errorf("no namespace in %s is %s", n.dir, want)
	}
	addrs, err := namespaceAddrs(callerPath)
	if err != nil {
		return 0, err
	}
	var found auth.Identity
	var claimed []netip.Addr
	for _, a := range addrs {
		id, ok := n.a.LocalIdentityOf(a)
		if !ok {
			continue
		}
		if found != 0 && auth.Identity(id) != found {
			return 0, fmt.Errorf("its addresses belong to identities %d and %d", found, id)
		}
		found = auth.Identity(id)
		claimed = append(claimed, a)
	}
	if found == 0 {
		return 0, fmt.Errorf("no local Pod address in %s", callerPath)
	}
	for _, p := range paths {
		other, err := namespaceAddrs(p)
		if err != nil {
			continue // gone meanwhile
		}
		for _, a := range claimed {
			if slices.Contains(other, a) {
				return 0, fmt.Errorf("address %s is also in namespace %s", a, p)
			}
		}
	}
	return found, nil
}

// namespaceAddrs lists the global addresses of the namespace at path.
func namespaceAddrs(path string) ([]netip.Addr, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer nl.Close()
	list, err := nl.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses in %s: %w", path, err)
	}
	out := []netip.Addr{}
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}
