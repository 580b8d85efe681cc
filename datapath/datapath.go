package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/internal/nsrun"
)

// Datapath is the loaded eBPF datapath of one node: programs, maps, links
// and routing rules. All methods are safe for concurrent use; writes to
// one table are serialised.
type Datapath struct {
	opts options
	log  *slog.Logger
	objs *objects
	nl   *netlink.Handle
	mode AttachMode // resolved: AttachTCX or AttachTC

	mu        sync.Mutex     // attachments and policy
	published publishedTable // guarded by mu
	tablesMu  sync.Mutex     // endpoints, ipcache, auth, config
}

// New loads the datapath, or adopts the one a previous run left pinned:
// compatible pinned maps (connection tracking included) are reused as they
// are, pinned links are switched to the new programs atomically, and
// attachments to interfaces that are gone are removed. A load that fails
// (verifier, unsupported kernel, impossible map) changes nothing on the
// bpf filesystem and leaves the previous run's programs attached.
func New(opts ...Option) (*Datapath, error) {
	o := options{pinDir: DefaultPinDir, attachMode: AttachAuto, log: slog.Default(), routing: true}
	for _, opt := range opts {
		opt(&o)
	}
	d := &Datapath{opts: o, log: o.log.With("component", "datapath")}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("lifting memlock limit: %w", err)
	}
	if err := checkKernel(); err != nil {
		return nil, err
	}
	if err := ensureBPFFS(o.pinDir); err != nil {
		return nil, err
	}
	nsh := netns.None()
	if o.netns != "" {
		h, err := netns.GetFromPath(o.netns)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", o.netns, err)
		}
		defer h.Close()
		nsh = h
	}
	nl, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("opening netlink in network namespace: %w", err)
	}
	d.nl = nl

	objs, err := loadObjects(o.sizes, o.pinDir, d.log)
	if err != nil {
		nl.Close()
		return nil, err
	}
	d.objs = objs

	err = nsrun.Do(o.netns, func() error {
		mode, err := d.resolveMode()
		if err != nil {
			return err
		}
		d.mode = mode
		if o.routing {
			if err := d.installRouting(); err != nil {
				return err
			}
		}
		if err := objs.pinFresh(o.pinDir); err != nil {
			return err
		}
		if err := d.writeConfig(func(c *nmbpf.WorkloadConfig) {
			c.Flags = 0
			if o.proxyCTID {
				c.Flags = configProxyCTIdentity
			}
		}); err != nil {
			return err
		}
		if err := d.adoptLinks(); err != nil {
			return err
		}
		return d.adoptCgroupLinks()
	})
	if err != nil {
		d.closeHandles()
		return nil, err
	}
	d.log.Info("datapath loaded", "pinDir", o.pinDir, "attach", d.mode, "newMaps", objs.fresh)
	return d, nil
}

// resolveMode turns AttachAuto into TCX or tc by asking the kernel.
func (d *Datapath) resolveMode() (AttachMode, error) {
	if d.opts.attachMode == AttachTC {
		return AttachTC, nil
	}
	// An attach to an interface index that cannot exist fails with ENODEV
	// when TCX is there and with ErrNotSupported when it is not.
	l, err := link.AttachTCX(link.TCXOptions{Interface: math.MaxInt32, Program: d.objs.FromWorkload, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		l.Close()
		return AttachTCX, nil
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		if d.opts.attachMode == AttachTCX {
			return 0, fmt.Errorf("%w: TCX links (Linux 6.6 or newer)", ErrUnsupportedKernel)
		}
		d.log.Info("kernel has no TCX, attaching with tc clsact filters")
		return AttachTC, nil
	}
	return AttachTCX, nil
}

// Mode reports how programs are attached (AttachTCX or AttachTC).
func (d *Datapath) Mode() AttachMode { return d.mode }

func (d *Datapath) closeHandles() {
	if d.objs != nil {
		_ = d.objs.Close()
	}
	if d.nl != nil {
		d.nl.Close()
	}
}

// Close releases this process's handles and leaves the datapath running:
// programs stay attached through their pinned links (or tc filters), maps
// stay pinned with their contents, so established connections and policy
// survive until the next New adopts them. This is what an agent does on
// shutdown or upgrade.
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closeHandles()
	return nil
}

// Uninstall removes the datapath from the node: programs are detached from
// every interface, the routing rules and every pin are removed. Maps and
// programs are freed once no other reference holds them. The Datapath is
// closed afterwards.
func (d *Datapath) Uninstall() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	err := nsrun.Do(d.opts.netns, func() error {
		for _, h := range allHooks {
			ifs, err := d.attached(h)
			if err != nil {
				errs = append(errs, err)
			}
			for _, i := range append(ifs, d.pinnedLinkIfindexes(h)...) {
				errs = append(errs, d.detach(i, []hook{h}))
			}
		}
		if d.opts.routing {
			errs = append(errs, d.removeRouting())
		}
		return nil
	})
	errs = append(errs, err)
	if err := os.RemoveAll(d.opts.pinDir); err != nil {
		errs = append(errs, fmt.Errorf("removing pins: %w", err))
	}
	d.closeHandles()
	return errors.Join(errs...)
}

// SetEnforcementMode sets the node-wide enforcement mode.
func (d *Datapath) SetEnforcementMode(m EnforcementMode) error {
	d.tablesMu.Lock()
	defer d.tablesMu.Unlock()
	if m > EnforceNever {
		return fmt.Errorf("enforcement mode %d: unknown", m)
	}
	if err := d.writeConfig(func(c *nmbpf.WorkloadConfig) { c.EnforceMode = uint32(m) }); err != nil {
		return fmt.Errorf("writing enforcement mode: %w", err)
	}
	return nil
}

// configProxyCTIdentity is bpf/lib/common.h's CONFIG_F_PROXY_CT_IDENTITY.
const configProxyCTIdentity = 0x1

// writeConfig changes the datapath's only config row, keeping the fields
// edit leaves alone.
func (d *Datapath) writeConfig(edit func(*nmbpf.WorkloadConfig)) error {
	var cfg nmbpf.WorkloadConfig
	if err := d.objs.NmConfig.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("reading the config row: %w", err)
	}
	edit(&cfg)
	return d.objs.NmConfig.Put(uint32(0), cfg)
}
