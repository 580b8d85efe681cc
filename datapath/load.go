package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
)

// mapLayout names the directory of pinned maps. Bump it whenever a key or
// value layout changes meaning without changing size: pins of other
// layouts are then treated as stale and removed after a successful load.
const mapLayout = "maps_v1"

// ConntrackPin is where the datapath pinned under pinDir keeps its
// connection-tracking map, which the proxy's policy listeners read source
// identities from (proxylib/conntrack restates its layout).
func ConntrackPin(pinDir string) string {
	return filepath.Join(pinDir, mapLayout, nmbpf.WorkloadMapNmCt)
}

// ErrUnsupportedKernel is returned when the running kernel lacks a BPF
// feature the datapath needs.
var ErrUnsupportedKernel = errors.New("kernel lacks a required BPF feature")

// requirement is one kernel feature with the release that introduced it,
// for an error message a user can act on.
type requirement struct {
	what  string
	since string
	probe func() error
}

var requirements = []requirement{
	{"tc (SchedCLS) programs", "4.1", func() error { return features.HaveProgramType(ebpf.SchedCLS) }},
	{"LPM trie maps", "4.11", func() error { return features.HaveMapType(ebpf.LPMTrie) }},
	{"LRU hash maps", "4.10", func() error { return features.HaveMapType(ebpf.LRUHash) }},
	{"array of maps (policy tables)", "4.12", func() error { return features.HaveMapType(ebpf.ArrayOfMaps) }},
	{"ring buffer maps", "5.8", func() error { return features.HaveMapType(ebpf.RingBuf) }},
	{"bpf_skc_lookup_tcp in tc programs", "5.2", func() error {
		return features.HaveProgramHelper(ebpf.SchedCLS, asm.FnSkcLookupTcp)
	}},
	{"bpf_sk_assign in tc programs", "5.7", func() error {
		return features.HaveProgramHelper(ebpf.SchedCLS, asm.FnSkAssign)
	}},
	{"bpf_ktime_get_boot_ns", "5.8", func() error {
		return features.HaveProgramHelper(ebpf.SchedCLS, asm.FnKtimeGetBootNs)
	}},
}

// checkKernel probes every requirement and names the first one missing.
func checkKernel() error {
	for _, r := range requirements {
		err := r.probe()
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("%w: %s (Linux %s or newer)", ErrUnsupportedKernel, r.what, r.since)
		}
		if err != nil {
			return fmt.Errorf("probing kernel for %s: %w", r.what, err)
		}
	}
	return nil
}

// ensureBPFFS makes sure dir exists on a bpf filesystem. If dir lies under
// the conventional /sys/fs/bpf and nothing is mounted there, it mounts one.
func ensureBPFFS(dir string) error {
	if onBPFFS(dir) {
		return nil
	}
	const conventional = "/sys/fs/bpf"
	if strings.HasPrefix(filepath.Clean(dir)+"/", conventional+"/") && !onBPFFS(conventional) {
		if err := os.MkdirAll(conventional, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", conventional, err)
		}
		if err := unix.Mount("bpffs", conventional, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mounting bpffs at %s: %w", conventional, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating pin directory %s: %w", dir, err)
	}
	if !onBPFFS(dir) {
		return fmt.Errorf("pin directory %s is not on a bpf filesystem", dir)
	}
	return nil
}

func onBPFFS(path string) bool {
	var st unix.Statfs_t
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if err := unix.Statfs(p, &st); err == nil {
			return st.Type == unix.BPF_FS_MAGIC
		}
		if p == "/" || p == "." {
			return false
		}
	}
}

// objects is the loaded collection: programs plus maps, with the maps that
// were pinned by an earlier run reused.
type objects struct {
	nmbpf.WorkloadObjects
	netdev nmbpf.NetdevObjects // from_netdev, sharing the maps above
	sock   nmbpf.SockObjects   // socket-level Service translation, sharing them too
	fresh  []string            // maps created by this load, pinned by pinFresh
	// policyTable is the spec of the tables published in nm_policy.
	policyTable *ebpf.MapSpec
}

func (o *objects) Close() error {
	return errors.Join(o.sock.Close(), o.netdev.Close(), o.WorkloadObjects.Close())
}

func (s MapSizes) apply(spec *ebpf.CollectionSpec) {
	set := func(name string, v uint32) {
		if v != 0 {
			spec.Maps[name].MaxEntries = v
		}
	}
	set(nmbpf.WorkloadMapNmEndpoints, s.Endpoints)
	set(nmbpf.WorkloadMapNmIpcache, s.IPCache)
	if s.Policy != 0 {
		spec.Maps[nmbpf.WorkloadMapNmPolicy].InnerMap.MaxEntries = s.Policy
	}
	set(nmbpf.WorkloadMapNmAuth, s.Auth)
	set(nmbpf.WorkloadMapNmCt, s.Conntrack)
	set(nmbpf.WorkloadMapNmFrag, s.Fragments)
	set(nmbpf.WorkloadMapNmEvents, s.EventBytes)
	set(nmbpf.WorkloadMapNmServices, s.Services)
	set(nmbpf.WorkloadMapNmRevnat, s.RevNAT)
	set(nmbpf.WorkloadMapNmSvcRanges, s.ServiceRanges)
}

// loadObjects loads the programs, reusing every compatible pinned map and
// creating the rest. Nothing on the bpf filesystem changes here: new maps
// are pinned by pinFresh only after the caller has everything it needs,
// so a failed load leaves the previous run's state untouched.
func loadObjects(sizes MapSizes, pinDir string, log *slog.Logger) (*objects, error) {
	spec, err := nmbpf.LoadWorkload()
	if err != nil {
		return nil, fmt.Errorf("reading embedded BPF object: %w", err)
	}
	netdevSpec, err := nmbpf.LoadNetdev()
	if err != nil {
		return nil, fmt.Errorf("reading embedded BPF object: %w", err)
	}
	sockSpec, err := nmbpf.LoadSock()
	if err != nil {
		return nil, fmt.Errorf("reading embedded BPF object: %w", err)
	}
	sizes.apply(spec)
	sizes.apply(netdevSpec)
	sizes.apply(sockSpec)

	mapDir := filepath.Join(pinDir, mapLayout)
	reuse := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range reuse {
			m.Close()
		}
	}()
	var fresh []string
	for name, ms := range spec.Maps {
		path := filepath.Join(mapDir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		switch {
		case err == nil:
			cerr := ms.Compatible(m)
			if cerr == nil && name == nmbpf.WorkloadMapNmPolicy {
				cerr = publishedTableCompatible(ms.InnerMap, m)
			}
			if cerr != nil {
				log.Warn("pinned map does not match this build, replacing it", "map", name, "reason", cerr)
				m.Close()
				fresh = append(fresh, name)
				continue
			}
			reuse[name] = m
		case errors.Is(err, os.ErrNotExist):
			fresh = append(fresh, name)
		default:
			log.Warn("pinned map unusable, replacing it", "map", name, "err", err)
			fresh = append(fresh, name)
		}
	}
	var o objects
	if err := spec.LoadAndAssign(&o.WorkloadObjects, &ebpf.CollectionOptions{MapReplacements: reuse}); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			log.Error("BPF verifier rejected the datapath programs", "log", fmt.Sprintf("%+v", ve))
		}
		return nil, fmt.Errorf("loading BPF programs and maps: %w", err)
	}
	o.fresh = fresh
	o.policyTable = spec.Maps[nmbpf.WorkloadMapNmPolicy].InnerMap.Copy()
	o.policyTable.Name = "nm_policy_tbl"
	if err := o.ensurePolicyTable(); err != nil {
		o.WorkloadObjects.Close()
		return nil, err
	}
	// The netdev program shares every map with the workload programs.
	if err := netdevSpec.LoadAndAssign(&o.netdev, &ebpf.CollectionOptions{MapReplacements: o.mapsByName()}); err != nil {
		o.WorkloadObjects.Close()
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			log.Error("BPF verifier rejected the netdev program", "log", fmt.Sprintf("%+v", ve))
		}
		return nil, fmt.Errorf("loading BPF netdev program: %w", err)
	}
	if err := sockSpec.LoadAndAssign(&o.sock, &ebpf.CollectionOptions{MapReplacements: o.mapsByName()}); err != nil {
		o.netdev.Close()
		o.WorkloadObjects.Close()
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			log.Error("BPF verifier rejected the socket programs", "log", fmt.Sprintf("%+v", ve))
		}
		return nil, fmt.Errorf("loading BPF socket programs: %w", err)
	}
	return &o, nil
}

// publishedTableCompatible checks the table published in a pinned
// nm_policy against this build's table spec: the kernel only accepts new
// tables like the ones the outer map was created for.
func publishedTableCompatible(spec *ebpf.MapSpec, outer *ebpf.Map) error {
	table, ok, err := openPublishedTable(outer)
	if err != nil {
		return err
	}
	if !ok {
		return nil // ensurePolicyTable publishes one
	}
	defer table.Close()
	if err := spec.Compatible(table); err != nil {
		return fmt.Errorf("published policy table: %w", err)
	}
	return nil
}

// ensurePolicyTable publishes an empty policy table if none is: the
// programs deny wherever policy could apply while the slot is empty.
func (o *objects) ensurePolicyTable() error {
	table, ok, err := openPublishedTable(o.NmPolicy)
	if err != nil {
		return err
	}
	if ok {
		return table.Close()
	}
	table, err = newPolicyTable(o.policyTable, nil, nil)
	if err != nil {
		return err
	}
	defer table.Close()
	if err := o.NmPolicy.Put(uint32(0), table); err != nil {
		return fmt.Errorf("publishing an empty policy table: %w", err)
	}
	return nil
}

// pinFresh pins the maps this load created, replacing stale pins in one
// rename each, and removes pins of maps this build no longer has and of
// other map layouts.
func (o *objects) pinFresh(pinDir string) error {
	mapDir := filepath.Join(pinDir, mapLayout)
	if err := os.MkdirAll(mapDir, 0o700); err != nil {
		return fmt.Errorf("creating map pin directory: %w", err)
	}
	byName := o.mapsByName()
	for _, name := range o.fresh {
		final := filepath.Join(mapDir, name)
		tmp := final + "_new"
		_ = os.Remove(tmp)
		if err := byName[name].Pin(tmp); err != nil {
			return fmt.Errorf("pinning map %s: %w", name, err)
		}
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("pinning map %s: %w", name, err)
		}
	}
	pinned, err := os.ReadDir(mapDir)
	if err != nil {
		return fmt.Errorf("listing map pin directory: %w", err)
	}
	for _, e := range pinned {
		if _, ok := byName[e.Name()]; !ok {
			if err := os.Remove(filepath.Join(mapDir, e.Name())); err != nil {
				return fmt.Errorf("removing pin of retired map %s: %w", e.Name(), err)
			}
		}
	}
	entries, err := os.ReadDir(pinDir)
	if err != nil {
		return fmt.Errorf("listing pin directory: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "maps_") && e.Name() != mapLayout {
			if err := os.RemoveAll(filepath.Join(pinDir, e.Name())); err != nil {
				return fmt.Errorf("removing stale map pins %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

func (o *objects) mapsByName() map[string]*ebpf.Map {
	m := &o.WorkloadMaps
	return map[string]*ebpf.Map{
		nmbpf.WorkloadMapNmAuth:      m.NmAuth,
		nmbpf.WorkloadMapNmConfig:    m.NmConfig,
		nmbpf.WorkloadMapNmCounters:  m.NmCounters,
		nmbpf.WorkloadMapNmCt:        m.NmCt,
		nmbpf.WorkloadMapNmEndpoints: m.NmEndpoints,
		nmbpf.WorkloadMapNmEvents:    m.NmEvents,
		nmbpf.WorkloadMapNmFrag:      m.NmFrag,
		nmbpf.WorkloadMapNmIpcache:   m.NmIpcache,
		nmbpf.WorkloadMapNmLost:      m.NmLost,
		nmbpf.WorkloadMapNmPolicy:    m.NmPolicy,
		nmbpf.WorkloadMapNmRevnat:    m.NmRevnat,
		nmbpf.WorkloadMapNmServices:  m.NmServices,
		nmbpf.WorkloadMapNmSvcRanges: m.NmSvcRanges,
	}
}
