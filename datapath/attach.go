package datapath

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/datapath/internal/nsrun"
)

// Programs are attached to the host side of each workload's veth: tc
// ingress runs from_workload (the workload's egress), tc egress runs
// to_workload (its ingress). With TCX each attachment is a bpf link pinned
// under <pin dir>/links/<ifindex>.<hook>, so it outlives the agent and a
// restart swaps in the new program atomically with link.Update. With tc
// clsact the filter itself lives on the interface and is replaced in place.

const (
	hookIngress = "ingress"
	hookEgress  = "egress"

	// tcPriority and tcHandle identify our clsact filters; tcNamePrefix
	// lets a restart find them again.
	tcPriority   = 1
	tcHandle     = 0x1
	tcNamePrefix = "nodemesh_"
)

var hooks = []string{hookIngress, hookEgress}

func (d *Datapath) hookProgram(hook string) *ebpf.Program {
	if hook == hookIngress {
		return d.objs.FromWorkload
	}
	return d.objs.ToWorkload
}

func tcxAttachType(hook string) ebpf.AttachType {
	if hook == hookIngress {
		return ebpf.AttachTCXIngress
	}
	return ebpf.AttachTCXEgress
}

func (d *Datapath) linkPin(ifindex int, hook string) string {
	return filepath.Join(d.opts.pinDir, "links", fmt.Sprintf("%d.%s", ifindex, hook))
}

// ErrInterfaceNotFound is returned when an interface to attach to does not
// exist (any more).
var ErrInterfaceNotFound = errors.New("interface not found")

// Attach attaches both programs to the interface with the given index in
// the datapath's network namespace. It is idempotent: an existing
// attachment is switched to the current programs atomically. Either both
// hooks end up attached or neither is changed.
func (d *Datapath) Attach(ifindex int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attach(ifindex)
}

func (d *Datapath) attach(ifindex int) error {
	return nsrun.Do(d.opts.netns, func() error {
		if _, err := d.nl.LinkByIndex(ifindex); err != nil {
			return fmt.Errorf("attaching to interface %d: %w", ifindex, ErrInterfaceNotFound)
		}
		mode := d.mode
		if mode == AttachTCX {
			return d.attachTCX(ifindex)
		}
		return d.attachTC(ifindex)
	})
}

// attachTCX attaches or updates both hooks; on failure it restores what
// was there before.
func (d *Datapath) attachTCX(ifindex int) (err error) {
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
	for _, hook := range hooks {
		prog := d.hookProgram(hook)
		pin := d.linkPin(ifindex, hook)
		if l, lerr := link.LoadPinnedLink(pin, nil); lerr == nil {
			handles = append(handles, l)
			if tcxLinkOn(l, ifindex, hook) {
				prev, perr := d.linkProgram(l)
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
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: tcxAttachType(hook)})
		if err != nil {
			if errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("attaching %s program to interface %d: %w", hook, ifindex, ErrInterfaceNotFound)
			}
			return fmt.Errorf("attaching %s program to interface %d: %w", hook, ifindex, err)
		}
		handles = append(handles, l)
		if err := l.Pin(pin); err != nil {
			return fmt.Errorf("pinning %s link of interface %d: %w", hook, ifindex, err)
		}
		undo = append(undo, func() { _ = l.Unpin() })
	}
	return nil
}

// tcxLinkOn reports whether l is a live TCX link on ifindex at hook.
func tcxLinkOn(l link.Link, ifindex int, hook string) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	tcx := info.TCX()
	return tcx != nil && int(tcx.Ifindex) == ifindex && ebpf.AttachType(tcx.AttachType) == tcxAttachType(hook)
}

func (d *Datapath) linkProgram(l link.Link) (*ebpf.Program, error) {
	info, err := l.Info()
	if err != nil {
		return nil, err
	}
	return ebpf.NewProgramFromID(info.Program)
}

// attachTC installs or replaces our clsact filters; on failure it
// restores what was there before.
func (d *Datapath) attachTC(ifindex int) (err error) {
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
	for _, hook := range hooks {
		restore := func() { _ = d.nl.FilterDel(tcFilter(ifindex, hook, nil)) }
		if old, _ := d.ourFilter(ifindex, hook); old != nil {
			restore = nil
			if p, perr := ebpf.NewProgramFromID(ebpf.ProgramID(old.Id)); perr == nil {
				handles = append(handles, p)
				restore = func() { _ = d.nl.FilterReplace(tcFilter(ifindex, hook, p)) }
			}
		}
		if err := d.nl.FilterReplace(tcFilter(ifindex, hook, d.hookProgram(hook))); err != nil {
			return fmt.Errorf("attaching %s tc filter to interface %d: %w", hook, ifindex, err)
		}
		if restore != nil {
			undo = append(undo, restore)
		}
	}
	return nil
}

func tcParent(hook string) uint32 {
	if hook == hookIngress {
		return netlink.HANDLE_MIN_INGRESS
	}
	return netlink.HANDLE_MIN_EGRESS
}

func tcFilter(ifindex int, hook string, prog *ebpf.Program) *netlink.BpfFilter {
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    tcParent(hook),
			Handle:    tcHandle,
			Priority:  tcPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Name:         tcNamePrefix + hook,
		DirectAction: true,
	}
	if prog != nil {
		f.Fd = prog.FD()
	}
	return f
}

func (d *Datapath) ourFilter(ifindex int, hook string) (*netlink.BpfFilter, error) {
	l, err := d.nl.LinkByIndex(ifindex)
	if err != nil {
		return nil, err
	}
	filters, err := d.nl.FilterList(l, tcParent(hook))
	if err != nil {
		return nil, err
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, tcNamePrefix) {
			return bf, nil
		}
	}
	return nil, nil
}

// Detach removes both programs from the interface. Detaching an interface
// that has nothing attached, or that no longer exists, is not an error.
func (d *Datapath) Detach(ifindex int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return nsrun.Do(d.opts.netns, func() error { return d.detach(ifindex) })
}

func (d *Datapath) detach(ifindex int) error {
	var errs []error
	for _, hook := range hooks {
		pin := d.linkPin(ifindex, hook)
		if l, err := link.LoadPinnedLink(pin, nil); err == nil {
			if derr := l.Detach(); derr != nil && !errors.Is(derr, unix.ENOLINK) && !errors.Is(derr, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("detaching %s link of interface %d: %w", hook, ifindex, derr))
			}
			_ = l.Unpin()
			l.Close()
		} else if !errors.Is(err, os.ErrNotExist) {
			// Unreadable pin: remove it so it cannot be mistaken for state.
			_ = os.Remove(pin)
		}
		if f, err := d.ourFilter(ifindex, hook); err == nil && f != nil {
			if derr := d.nl.FilterDel(f); derr != nil && !errors.Is(derr, unix.ENOENT) && !errors.Is(derr, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("removing %s tc filter of interface %d: %w", hook, ifindex, derr))
			}
		}
	}
	return errors.Join(errs...)
}

// Attached lists the interfaces that have our programs attached, by
// pinned TCX link or by tc filter.
func (d *Datapath) Attached() ([]int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int
	err := nsrun.Do(d.opts.netns, func() error {
		var err error
		out, err = d.attached()
		return err
	})
	return out, err
}

func (d *Datapath) attached() ([]int, error) {
	set := map[int]bool{}
	for _, ifindex := range d.pinnedLinkIfindexes() {
		for _, hook := range hooks {
			l, err := link.LoadPinnedLink(d.linkPin(ifindex, hook), nil)
			if err != nil {
				continue
			}
			if tcxLinkOn(l, ifindex, hook) {
				set[ifindex] = true
			}
			l.Close()
		}
	}
	links, err := d.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, l := range links {
		if f, _ := d.ourFilter(l.Attrs().Index, hookIngress); f != nil {
			set[l.Attrs().Index] = true
		}
	}
	out := make([]int, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	sort.Ints(out)
	return out, nil
}

func (d *Datapath) pinnedLinkIfindexes() []int {
	entries, err := os.ReadDir(filepath.Join(d.opts.pinDir, "links"))
	if err != nil {
		return nil
	}
	set := map[int]bool{}
	for _, e := range entries {
		idx, _, ok := strings.Cut(e.Name(), ".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(idx); err == nil {
			set[n] = true
		}
	}
	out := make([]int, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// SyncAttachments makes exactly the given interfaces carry our programs:
// missing ones are attached, others detached, and pins of interfaces that
// disappeared are removed. It returns the first attach error after trying
// every interface.
func (d *Datapath) SyncAttachments(ifindexes []int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return nsrun.Do(d.opts.netns, func() error {
		want := map[int]bool{}
		for _, i := range ifindexes {
			want[i] = true
		}
		cur, err := d.attached()
		if err != nil {
			return err
		}
		var errs []error
		for _, i := range cur {
			if !want[i] {
				errs = append(errs, d.detach(i))
			}
		}
		for _, i := range d.pinnedLinkIfindexes() {
			if !want[i] {
				errs = append(errs, d.detach(i))
			}
		}
		for _, i := range ifindexes {
			if _, err := d.nl.LinkByIndex(i); err != nil {
				errs = append(errs, fmt.Errorf("attaching to interface %d: %w", i, ErrInterfaceNotFound))
				continue
			}
			if d.mode == AttachTCX {
				errs = append(errs, d.attachTCX(i))
			} else {
				errs = append(errs, d.attachTC(i))
			}
		}
		return errors.Join(errs...)
	})
}

// adoptLinks switches every live pinned link to the freshly loaded
// programs and removes pins whose interface is gone. Called from New, in
// the datapath's namespace.
func (d *Datapath) adoptLinks() error {
	var errs []error
	for _, ifindex := range d.pinnedLinkIfindexes() {
		for _, hook := range hooks {
			pin := d.linkPin(ifindex, hook)
			l, err := link.LoadPinnedLink(pin, nil)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					d.log.Warn("removing unreadable link pin", "pin", pin, "err", err)
					_ = os.Remove(pin)
				}
				continue
			}
			if !tcxLinkOn(l, ifindex, hook) {
				d.log.Info("removing pin of a link whose interface is gone", "ifindex", ifindex, "hook", hook)
				_ = l.Unpin()
				l.Close()
				continue
			}
			if err := l.Update(d.hookProgram(hook)); err != nil {
				errs = append(errs, fmt.Errorf("updating %s program of interface %d: %w", hook, ifindex, err))
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
		for _, hook := range hooks {
			if f, _ := d.ourFilter(idx, hook); f != nil {
				if err := d.nl.FilterReplace(tcFilter(idx, hook, d.hookProgram(hook))); err != nil {
					errs = append(errs, fmt.Errorf("updating %s tc filter of interface %d: %w", hook, idx, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
