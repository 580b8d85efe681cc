package datapath

import (
	"errors"
	"fmt"
	"maps"
	"sort"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// The policy is published as a whole: nm_policy is an array of one map,
// whose only slot holds the policy table in force (rule rows plus one
// enforcement row per enforced identity). A program looks the slot up
// once per packet and does every lookup of its verdict in the table it
// got. SyncPolicy builds a new table completely, then replaces the slot's
// table in one write, and never writes a published table again. So every
// packet is judged by one version of the policy, old or new, however its
// lookups interleave with the update; updating rows in place could not
// promise that, since a program paused between two of its lookups would
// combine rows of different moments of the update.

// policyEnforceRow is the key of subject's enforcement row (its value's
// verdict holds the model.Enforcement bits); no rule row has direction 0.
func policyEnforceRow(subject model.Identity) nmbpf.WorkloadPolicyKey {
	return nmbpf.WorkloadPolicyKey{Subject: uint32(subject)}
}

// SyncPolicy makes the kernel's policy equal to p, atomically: each new
// flow is judged either by the policy held before the call or by p, never
// by a mix. An invalid policy, or one that cannot fit, is rejected and
// the previous policy stays in force; nothing is written when nothing
// changed. Connections already established keep flowing (as in Cilium,
// policy judges connection setup).
func (d *Datapath) SyncPolicy(p model.Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, published, err := d.publishedPolicy()
	if err != nil {
		return err
	}
	want := make(map[model.PolicyKey]model.PolicyEntry, len(p.Entries))
	for _, e := range p.Entries {
		want[e.Key()] = e
	}
	enforce := make(map[model.Identity]model.Enforcement, len(p.Enforce))
	for id, e := range p.Enforce {
		if e != 0 {
			enforce[id] = e
		}
	}
	if published && maps.Equal(cur.rows, want) && maps.Equal(cur.enforce, enforce) {
		return nil
	}
	spec := d.objs.policyTable
	if n := len(want) + len(enforce); uint32(n) > spec.MaxEntries {
		return fmt.Errorf("%w: policy needs %d rows (%d rules, %d enforced identities), map %s holds %d",
			ErrMapFull, n, len(want), len(enforce), nmbpf.WorkloadMapNmPolicy, spec.MaxEntries)
	}
	table, err := newPolicyTable(spec, want, enforce)
	if err != nil {
		return err
	}
	defer table.Close()
	id, err := mapID(table)
	if err != nil {
		return err
	}
	if err := d.objs.NmPolicy.Put(uint32(0), table); err != nil {
		return fmt.Errorf("publishing the policy table: %w", err)
	}
	d.published = publishedTable{id: id, state: policyState{rows: want, enforce: enforce}}
	return nil
}

// publishedTable remembers the content of the table this Datapath last
// published. Published tables are never written, so while the slot still
// holds that table (same map ID) the content is known without reading it
// back.
type publishedTable struct {
	id    ebpf.MapID
	state policyState
}

// publishedPolicy returns the content of the published table: from
// d.published if the slot still holds that table, read from the kernel
// otherwise (a table published by an earlier run). Callers hold d.mu.
func (d *Datapath) publishedPolicy() (policyState, bool, error) {
	table, ok, err := openPublishedTable(d.objs.NmPolicy)
	if err != nil {
		return policyState{}, false, err
	}
	if !ok {
		return emptyPolicyState(), false, nil
	}
	defer table.Close()
	id, err := mapID(table)
	if err != nil {
		return policyState{}, false, err
	}
	if d.published.id != 0 && id == d.published.id {
		return d.published.state, true, nil
	}
	s, err := readPolicyTable(table)
	if err != nil {
		return policyState{}, false, err
	}
	d.published = publishedTable{id: id, state: s}
	return s, true, nil
}

func mapID(m *ebpf.Map) (ebpf.MapID, error) {
	info, err := m.Info()
	if err != nil {
		return 0, fmt.Errorf("reading map info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, fmt.Errorf("reading map info: kernel reports no map ID")
	}
	return id, nil
}

// newPolicyTable creates a table holding rows and enforce, not yet
// published.
func newPolicyTable(spec *ebpf.MapSpec, rows map[model.PolicyKey]model.PolicyEntry, enforce map[model.Identity]model.Enforcement) (*ebpf.Map, error) {
	table, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("creating a policy table: %w", err)
	}
	keys := make([]nmbpf.WorkloadPolicyKey, 0, len(rows)+len(enforce))
	values := make([]nmbpf.WorkloadPolicyValue, 0, len(rows)+len(enforce))
	for _, e := range rows {
		keys = append(keys, policyKeyOf(e.Key()))
		values = append(values, policyValueOf(e))
	}
	for id, e := range enforce {
		keys = append(keys, policyEnforceRow(id))
		values = append(values, nmbpf.WorkloadPolicyValue{Verdict: uint8(e)})
	}
	if len(keys) > 0 {
		if _, err := table.BatchUpdate(keys, values, nil); err != nil {
			table.Close()
			return nil, fmt.Errorf("filling a policy table: %w", mapWriteErr(err))
		}
	}
	return table, nil
}

// Policy returns the policy the kernel currently holds.
func (d *Datapath) Policy() (model.Policy, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, _, err := d.publishedPolicy()
	if err != nil {
		return model.Policy{}, err
	}
	return cur.policy(), nil
}

// policyState is the content of one policy table.
type policyState struct {
	rows    map[model.PolicyKey]model.PolicyEntry
	enforce map[model.Identity]model.Enforcement
}

func (s policyState) policy() model.Policy {
	return model.Policy{Enforce: maps.Clone(s.enforce), Entries: sortedEntries(s.rows)}
}

func emptyPolicyState() policyState {
	return policyState{rows: map[model.PolicyKey]model.PolicyEntry{}, enforce: map[model.Identity]model.Enforcement{}}
}

// readPolicySlot reads the table published in outer. An empty slot (the
// programs then deny wherever policy could apply) reads as an empty
// policy.
func readPolicySlot(outer *ebpf.Map) (policyState, error) {
	table, ok, err := openPublishedTable(outer)
	if err != nil {
		return policyState{}, err
	}
	if !ok {
		return emptyPolicyState(), nil
	}
	defer table.Close()
	return readPolicyTable(table)
}

// openAttempts bounds how often openPublishedTable looks the slot up
// again after the table it named disappeared. Each miss means a whole
// publication (building a table, writing the slot, waiting for running
// programs) happened between two system calls made back to back, so a
// second miss in a row is already rare; running out of attempts means
// something publishes without pause.
const openAttempts = 5

// openPublishedTable opens the table published in outer's slot; ok is
// false if the slot is empty. The caller closes the table; the
// open handle keeps it alive and, since a published table is never
// written, its content is one whole version of the policy.
//
// Reading a slot from user space yields the table's ID, which the
// library then opens (BPF_MAP_GET_FD_BY_ID). If another table is
// published in between, the kernel may free the old one before the
// open, which then fails with ENOENT; the slot is looked up again. The
// library reports an empty slot as ErrKeyNotExist (it too wraps
// ENOENT), so that case is told apart first. Past openAttempts the
// read fails: an empty policy in its place would claim that nothing is
// enforced.
func openPublishedTable(outer *ebpf.Map) (*ebpf.Map, bool, error) {
	for attempt := 1; ; attempt++ {
		var table *ebpf.Map
		err := outer.Lookup(uint32(0), &table)
		switch {
		case err == nil:
			return table, true, nil
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil, false, nil
		case !errors.Is(err, unix.ENOENT):
			return nil, false, fmt.Errorf("looking up the published policy table: %w", err)
		case attempt == openAttempts:
			return nil, false, fmt.Errorf("opening the published policy table: replaced before it could be opened, %d times in a row: %w", attempt, err)
		}
	}
}

func readPolicyTable(table *ebpf.Map) (policyState, error) {
	raw, err := readAll[nmbpf.WorkloadPolicyKey, nmbpf.WorkloadPolicyValue](table)
	if err != nil {
		return policyState{}, err
	}
	s := policyState{rows: make(map[model.PolicyKey]model.PolicyEntry, len(raw)), enforce: map[model.Identity]model.Enforcement{}}
	for k, v := range raw {
		if k == policyEnforceRow(model.Identity(k.Subject)) {
			s.enforce[model.Identity(k.Subject)] = model.Enforcement(v.Verdict)
			continue
		}
		e := policyEntryFrom(k, v)
		s.rows[e.Key()] = e
	}
	return s, nil
}

// sortedEntries returns the entries ordered by key, for deterministic
// output.
func sortedEntries(rows map[model.PolicyKey]model.PolicyEntry) []model.PolicyEntry {
	out := make([]model.PolicyEntry, 0, len(rows))
	for _, e := range rows {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i].Key(), out[j].Key()) })
	return out
}

func keyLess(k, o model.PolicyKey) bool {
	if k.Subject != o.Subject {
		return k.Subject < o.Subject
	}
	if k.Direction != o.Direction {
		return k.Direction < o.Direction
	}
	if k.Remote != o.Remote {
		return k.Remote < o.Remote
	}
	if k.Proto != o.Proto {
		return k.Proto < o.Proto
	}
	return k.Port < o.Port
}
