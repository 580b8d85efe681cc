package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/workload"
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
// Addresses are cached per namespace (device, inode): a Pod keeps its
// addresses for the life of its namespace, and the open workload server
// connection pins the namespace, so its inode is not reused meanwhile.
// The identity is looked up afresh on every call, so label changes count.
type netnsAttestor struct {
	dir string
	a   *agent.Agent
	log *slog.Logger

	mu    sync.Mutex
	addrs map[workload.NetNS][]netip.Addr
}

var _ workload.Attestor = (*netnsAttestor)(nil)

func (n *netnsAttestor) Attest(ns workload.NetNS) (auth.Identity, bool) {
	n.mu.Lock()
	addrs, ok := n.addrs[ns]
	n.mu.Unlock()
	if !ok {
		var err error
		if addrs, err = n.find(ns); err != nil {
			n.log.Warn("attesting a Workload API caller", "netns", ns, "error", err)
			return 0, false
		}
	}
	for _, a := range addrs {
		if id, ok := n.a.LocalIdentityOf(a); ok {
			return auth.Identity(id), true
		}
	}
	return 0, false
}

// find scans dir for ns and reads its addresses; the cache is rebuilt
// from the scan, so namespaces that went are forgotten.
func (n *netnsAttestor) find(want workload.NetNS) ([]netip.Addr, error) {
	names, err := os.ReadDir(n.dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", n.dir, err)
	}
	if len(names) > maxNetnsFiles {
		names = names[:maxNetnsFiles]
	}
	n.mu.Lock()
	old := n.addrs
	n.mu.Unlock()
	fresh := map[workload.NetNS][]netip.Addr{}
	var found []netip.Addr
	for _, e := range names {
		path := filepath.Join(n.dir, e.Name())
		ns, err := workload.NetNSOfPath(path)
		if err != nil {
			continue // gone meanwhile, or not a namespace
		}
		addrs, ok := old[ns]
		if !ok {
			if ns != want {
				continue // read only when asked for
			}
			if addrs, err = namespaceAddrs(path); err != nil {
				return nil, err
			}
		}
		fresh[ns] = addrs
		if ns == want {
			found = addrs
		}
	}
	n.mu.Lock()
	n.addrs = fresh
	n.mu.Unlock()
	if found == nil {
		return nil, fmt.Errorf("no namespace in %s is %s", n.dir, want)
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
