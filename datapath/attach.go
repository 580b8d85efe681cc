package datapath

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/datapath/internal/nsrun"
)

// Programs are attached at two kinds of interfaces:
//
//   - the host side of each workload's veth: tc ingress runs from_workload
//     (the workload's egress), tc egress runs to_workload (its ingress);
//   - the node's own devices (uplinks): tc ingress runs from_netdev, which
//     hands redirected flows from outside the node to the proxy.
//
// With TCX each hook is a bpf link pinned under
// <pin dir>/links/<ifindex>_<hook>, so it outlives the agent and a restart
// swaps in the new program atomically with link.Update. With tc clsact the
// filter itself lives on the interface (named nodemesh_<hook>) and is
// replaced in place.

type hook struct {
	name     string
	ingress  bool
	tcHandle uint32
	prog     func(*objects) *ebpf.Program
}

var (
	hookFromWorkload = hook{"ingress", true, 1, func(o *objects) *ebpf.Program { return o.FromWorkload }}
	hookToWorkload   = hook{"egress", false, 1, func(o *objects) *ebpf.Program { return o.ToWorkload }}
	hookFromNetdev   = hook{"netdev", true, 2, func(o *objects) *ebpf.Program { return o.netdev.FromNetdev }}

	workloadHooks = []hook{hookFromWorkload, hookToWorkload}
	netdevHooks   = []hook{hookFromNetdev}
	allHooks      = []hook{hookFromWorkload, hookToWorkload, hookFromNetdev}
)

const (
	// tcPriority (with each hook's tcHandle) places our clsact filters;
	// tcNamePrefix names them so a restart finds them again.
	tcPriority   = 1
	tcNamePrefix = "nodemesh_"
)

func (h hook) tcxAttach() ebpf.AttachType {
	if h.ingress {
		return ebpf.AttachTCXIngress
	}
	return ebpf.AttachTCXEgress
}

func (h hook) tcParent() uint32 {
	if h.ingress {
		return netlink.HANDLE_MIN_INGRESS
	}
	return netlink.HANDLE_MIN_EGRESS
}

func (d *Datapath) linkPin(ifindex int, h hook) string {
	return filepath.Join(d.opts.pinDir, "links", fmt.Sprintf("%d_%s", ifindex, h.name))
}

// ErrInterfaceNotFound is returned when an interface to attach to does not
// exist (any more).
var ErrInterfaceNotFound = errors.New("interface not found")

// Attach attaches the workload programs to the host side of a workload's
// veth (interface index in the datapath's namespace). It is idempotent: an
// existing attachment is switched to the current programs atomically.
// Either both hooks end up attached or nothing changes.
func (d *Datapath) Attach(ifindex int) error {
	return d.attachLocked(ifindex, workloadHooks)
}

// AttachNetdev attaches from_netdev to one of the node's own devices
// (uplink, tunnel), so flows from outside the node that policy redirects
// to the proxy are handed to it where they enter.
func (d *Datapath) AttachNetdev(ifindex int) error {
	return d.attachLocked(ifindex, netdevHooks)
}

func (d *Datapath) attachLocked(ifindex int, hooks []hook) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return nsrun.Do(d.opts.netns, func() error { return d.attach(ifindex, hooks) })
}

// attach must run in the datapath's namespace.
func (d *Datapath) attach(ifindex int, hooks []hook) error {
	link, err := d.nl.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("attaching to interface %d: %w", ifindex, ErrInterfaceNotFound)
	}
	// to_workload, the one egress hook, is the one that hairpins.
	if slices.ContainsFunc(hooks, func(h hook) bool { return !h.ingress }) {
		d.acceptLocal(link.Attrs().Name)
	}
	if d.mode == AttachTCX {
		return d.attachTCX(ifindex, hooks)
	}
	return d.attachTC(ifindex, hooks)
}

// attachTCX attaches or updates the hooks; on failure it restores what was
// there before.
func (d *Datapath) attachTCX(ifindex int, hooks []hook) (err error) {
	var undo []func()
	var handles []io.Closer
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
		// The pins keep the links; our handles are no longer needed.
		for _, h := range handles {
			_ = h.Close()
		}
	}()
	if err := os.MkdirAll(filepath.Join(d.opts.pinDir, "links"), 0o700); err != nil {
		return fmt.Errorf("creating link pin directory: %w", err)
	}
	for _, h := range hooks {
		prog := h.prog(d.objs)
		pin := d.linkPin(ifindex, h)
		if l, lerr := link.LoadPinnedLink(pin, nil); lerr == nil {
			handles = append(handles, l)
			if tcxLinkOn(l, ifindex, h) {
				prev, perr := linkProgram(l)
				if perr == nil {
					handles = append(handles, prev)
				}
				if l.Update(prog) == nil {
					if perr == nil {
						undo = append(undo, func() { _ = l.Update(prev) })
					}
					continue
				}
			}
			// A pin for an interface that is gone or was replaced, or a
			// link that refuses the new program: release it.
			_ = l.Unpin()
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: h.tcxAttach()})
		if err != nil {
			if errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("attaching %s program to interface %d: %w", h.name, ifindex, ErrInterfaceNotFound)
			}
			return fmt.Errorf("attaching %s program to interface %d: %w", h.name, ifindex, err)
		}
		handles = append(handles, l)
		if err := l.Pin(pin); err != nil {
			return fmt.Errorf("pinning %s link of interface %d: %w", h.name, ifindex, err)
		}
		undo = append(undo, func() { _ = l.Unpin() })
	}
	// A previous run in tc mode may have left filters: the links run
	// first and decide alone, but the filters must not linger.
	for _, h := range hooks {
		if f, _ := d.ourFilter(ifindex, h); f != nil {
			_ = d.nl.FilterDel(f)
		}
	}
	return nil
}

// tcxLinkOn reports whether l is a live TCX link on ifindex at hook h.
func tcxLinkOn(l link.Link, ifindex int, h hook) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	tcx := info.TCX()
	return tcx != nil && int(tcx.Ifindex) == ifindex && ebpf.AttachType(tcx.AttachType) == h.tcxAttach()
}

func linkProgram(l link.Link) (*ebpf.Program, error) {
	info, err := l.Info()
	if err != nil {
		return nil, err
	}
	return ebpf.NewProgramFromID(info.Program)
}

// attachTC installs or replaces our clsact filters; on failure it
// restores what was there before.
func (d *Datapath) attachTC(ifindex int, hooks []hook) (err error) {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := d.nl.QdiscReplace(qdisc); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("adding clsact qdisc to interface %d: %w", ifindex, ErrInterfaceNotFound)
		}
		return fmt.Errorf("adding clsact qdisc to interface %d: %w", ifindex, err)
	}
	var undo []func()
	var handles []io.Closer
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
		for _, h := range handles {
			_ = h.Close()
		}
	}()
	for _, h := range hooks {
		restore := func() { _ = d.nl.FilterDel(tcFilter(ifindex, h, nil)) }
		if old, _ := d.ourFilter(ifindex, h); old != nil {
			restore = nil
			if p, perr := ebpf.NewProgramFromID(ebpf.ProgramID(old.Id)); perr == nil {
				handles = append(handles, p)
				restore = func() { _ = d.nl.FilterReplace(tcFilter(ifindex, h, p)) }
			}
		}
		if err := d.nl.FilterReplace(tcFilter(ifindex, h, h.prog(d.objs))); err != nil {
			return fmt.Errorf("attaching %s tc filter to interface %d: %w", h.name, ifindex, err)
		}
		if restore != nil {
			undo = append(undo, restore)
		}
	}
	// A previous run in TCX mode may have left links, which would run
	// before the filters: release them.
	for _, h := range hooks {
		if l, err := link.LoadPinnedLink(d.linkPin(ifindex, h), nil); err == nil {
			_ = l.Detach()
			_ = l.Unpin()
			l.Close()
		}
	}
	return nil
}

func tcFilter(ifindex int, h hook, prog *ebpf.Program) *netlink.BpfFilter {
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    h.tcParent(),
			Handle:    h.tcHandle,
			Priority:  tcPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Name:         tcNamePrefix + h.name,
		DirectAction: true,
	}
	if prog != nil {
		f.Fd = prog.FD()
	}
	return f
}

// ourFilter finds our clsact filter for hook h, if any.
func (d *Datapath) ourFilter(ifindex int, h hook) (*netlink.BpfFilter, error) {
	l, err := d.nl.LinkByIndex(ifindex)
	if err != nil {
		return nil, err
	}
	filters, err := d.nl.FilterList(l, h.tcParent())
	if err != nil {
		return nil, err
	}
	for _, f := range filters {
		// The kernel reports the name with the object's section suffix.
		if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, tcNamePrefix+h.name) {
			return bf, nil
		}
	}
	return nil, nil
}

// Detach removes every program of ours from the interface. Detaching an
// interface that has nothing attached, or that no longer exists, is not
// an error.
func (d *Datapath) Detach(ifindex int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return nsrun.Do(d.opts.netns, func() error { return d.detach(ifindex, allHooks) })
}

func (d *Datapath) detach(ifindex int, hooks []hook) error {
	var errs []error
	for _, h := range hooks {
		pin := d.linkPin(ifindex, h)
		if l, err := link.LoadPinnedLink(pin, nil); err == nil {
			if derr := l.Detach(); derr != nil && !errors.Is(derr, unix.ENOLINK) && !errors.Is(derr, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("detaching %s link of interface %d: %w", h.name, ifindex, derr))
			}
			_ = l.Unpin()
			l.Close()
		} else if !errors.Is(err, os.ErrNotExist) {
			// Unreadable pin: remove it so it cannot be mistaken for state.
			_ = os.Remove(pin)
		}
		if f, err := d.ourFilter(ifindex, h); err == nil && f != nil {
			if derr := d.nl.FilterDel(f); derr != nil && !errors.Is(derr, unix.ENOENT) && !errors.Is(derr, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("removing %s tc filter of interface %d: %w", h.name, ifindex, derr))
			}
		}
	}
	return errors.Join(errs...)
}

// Attached lists the workload interfaces carrying our programs, by pinned
// TCX link or by tc filter.
func (d *Datapath) Attached() ([]int, error) {
	return d.attachedLocked(hookFromWorkload)
}

// AttachedNetdevs lists the node devices carrying from_netdev.
func (d *Datapath) AttachedNetdevs() ([]int, error) {
	return d.attachedLocked(hookFromNetdev)
}

func (d *Datapath) attachedLocked(h hook) ([]int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int
	err := nsrun.Do(d.opts.netns, func() error {
		var err error
		out, err = d.attached(h)
		return err
	})
	return out, err
}

// attached lists interfaces where hook h is live.
func (d *Datapath) attached(h hook) ([]int, error) {
	set := map[int]bool{}
	for _, ifindex := range d.pinnedLinkIfindexes(h) {
		l, err := link.LoadPinnedLink(d.linkPin(ifindex, h), nil)
		if err != nil {
			continue
		}
		if tcxLinkOn(l, ifindex, h) {
			set[ifindex] = true
		}
		l.Close()
	}
	links, err := d.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, l := range links {
		if f, _ := d.ourFilter(l.Attrs().Index, h); f != nil {
			set[l.Attrs().Index] = true
		}
	}
	return sortedInts(set), nil
}

// pinnedLinkIfindexes lists interfaces with a link pin for hook h.
func (d *Datapath) pinnedLinkIfindexes(h hook) []int {
	entries, err := os.ReadDir(filepath.Join(d.opts.pinDir, "links"))
	if err != nil {
		return nil
	}
	set := map[int]bool{}
	for _, e := range entries {
		idx, name, ok := strings.Cut(e.Name(), "_")
		if !ok || name != h.name {
			continue
		}
		if n, err := strconv.Atoi(idx); err == nil {
			set[n] = true
		}
	}
	return sortedInts(set)
}

func sortedInts(set map[int]bool) []int {
	out := make([]int, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// SyncAttachments makes exactly the given workload interfaces carry the
// workload programs: missing ones are attached, others detached, and pins
// of interfaces that disappeared are removed. Every interface is tried; the
// errors are joined.
func (d *Datapath) SyncAttachments(ifindexes []int) error {
	return d.syncAttachments(ifindexes, workloadHooks)
}

// SyncNetdevs is SyncAttachments for from_netdev on the node's devices.
func (d *Datapath) SyncNetdevs(ifindexes []int) error {
	return d.syncAttachments(ifindexes, netdevHooks)
}

func (d *Datapath) syncAttachments(ifindexes []int, hooks []hook) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return nsrun.Do(d.opts.netns, func() error {
		want := map[int]bool{}
		for _, i := range ifindexes {
			want[i] = true
		}
		cur, err := d.attached(hooks[0])
		if err != nil {
			return err
		}
		var errs []error
		for _, i := range append(cur, d.pinnedLinkIfindexes(hooks[0])...) {
			if !want[i] {
				errs = append(errs, d.detach(i, hooks))
			}
		}
		for _, i := range ifindexes {
			errs = append(errs, d.attach(i, hooks))
		}
		return errors.Join(errs...)
	})
}

// adoptLinks switches every live pinned link and tc filter to the freshly
// loaded programs and removes pins whose interface is gone. Called from
// New, in the datapath's namespace.
func (d *Datapath) adoptLinks() error {
	var errs []error
	for _, h := range allHooks {
		for _, ifindex := range d.pinnedLinkIfindexes(h) {
			pin := d.linkPin(ifindex, h)
			l, err := link.LoadPinnedLink(pin, nil)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					d.log.Warn("removing unreadable link pin", "pin", pin, "err", err)
					_ = os.Remove(pin)
				}
				continue
			}
			if !tcxLinkOn(l, ifindex, h) {
				d.log.Info("removing pin of a link whose interface is gone", "ifindex", ifindex, "hook", h.name)
				_ = l.Unpin()
				l.Close()
				continue
			}
			if err := l.Update(h.prog(d.objs)); err != nil {
				errs = append(errs, fmt.Errorf("updating %s program of interface %d: %w", h.name, ifindex, err))
			}
			l.Close()
		}
	}
	links, err := d.nl.LinkList()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing interfaces: %w", err))...)
	}
	for _, l := range links {
		idx := l.Attrs().Index
		for _, h := range allHooks {
			if f, _ := d.ourFilter(idx, h); f != nil {
				if err := d.nl.FilterReplace(tcFilter(idx, h, h.prog(d.objs))); err != nil {
					errs = append(errs, fmt.Errorf("updating %s tc filter of interface %d: %w", h.name, idx, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// acceptLocal lets a workload's interface take packets whose source is
// one of the node's own addresses (net.ipv4.conf.<name>.accept_local).
// Only the datapath's hairpins bring such packets in: a routing
// listener's connection to a same-node backend, sent from the node's
// address and handed to the ingress policy listener by a loop through
// the interface's ingress (to_workload, proxy_hairpin). Without it the
// stack drops them as martians and that connection never opens (closed,
// not open). A workload cannot use it to pose as the node: from_workload
// drops every packet whose source its interface does not own, and the
// mark that makes the hairpin is set by the programs only (a mark does
// not cross into the node's namespace). It must run in the datapath's
// namespace.
func (d *Datapath) acceptLocal(name string) {
	path := "/proc/sys/net/ipv4/conf/" + name + "/accept_local"
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		d.log.Warn("cannot set accept_local: the node proxy's connections from the node's address to this interface's workload are refused where its L7 policy applies",
			"interface", name, "error", err)
	}
}
