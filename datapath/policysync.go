package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// SyncPolicy makes the kernel's policy and enforcement tables equal to p.
// Rows are written in the order planPolicy proves safe, so a policy update
// never lets a new flow through that neither the old nor the new policy
// allows. An invalid policy, or one that cannot fit, is rejected before any
// write; a write that fails midway is rolled back. Connections already
// established keep flowing (as in Cilium, policy judges connection setup).
func (d *Datapath) SyncPolicy(p model.Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	curRows, curEnforce, err := d.readPolicy()
	if err != nil {
		return err
	}
	ops := planPolicy(curEnforce, curRows, p)
	if len(ops) == 0 {
		return nil
	}
	if peak, max := peakRows(curRows, ops), d.objs.NmPolicy.MaxEntries(); uint32(peak) > max {
		return fmt.Errorf("%w: policy needs %d rows during the update (%d after it), map %s holds %d",
			ErrMapFull, peak, len(p.Entries), nmbpf.WorkloadMapNmPolicy, max)
	}
	// Enforcement entries are cleared before new ones are added, so the
	// peak is the larger of the old and the new count.
	if max := d.objs.NmEnforce.MaxEntries(); uint32(len(p.Enforce)) > max {
		return fmt.Errorf("%w: %d enforced identities, map %s holds %d", ErrMapFull, len(p.Enforce), nmbpf.WorkloadMapNmEnforce, max)
	}
	for i, op := range ops {
		if err := d.applyPolicyOp(op); err != nil {
			var undoErrs []error
			for j := i - 1; j >= 0; j-- {
				undoErrs = append(undoErrs, d.applyPolicyOp(ops[j].undo()))
			}
			if uerr := errors.Join(undoErrs...); uerr != nil {
				return fmt.Errorf("applying policy: %w (rolling back: %w)", err, uerr)
			}
			return fmt.Errorf("applying policy (rolled back): %w", err)
		}
	}
	return nil
}

func (d *Datapath) applyPolicyOp(op policyOp) error {
	switch op.kind {
	case opPutRow:
		k, v := policyKeyOf(op.entry.Key()), policyValueOf(op.entry)
		if err := d.objs.NmPolicy.Put(k, v); err != nil {
			return fmt.Errorf("writing policy row %+v: %w", op.entry.Key(), mapWriteErr(err))
		}
	case opDeleteRow:
		if err := d.objs.NmPolicy.Delete(policyKeyOf(op.entry.Key())); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("deleting policy row %+v: %w", op.entry.Key(), err)
		}
	case opSetEnforce:
		key := uint32(op.id)
		if op.enforce == 0 {
			if err := d.objs.NmEnforce.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("clearing enforcement of identity %d: %w", op.id, err)
			}
			return nil
		}
		if err := d.objs.NmEnforce.Put(key, uint32(op.enforce)); err != nil {
			return fmt.Errorf("enforcing identity %d: %w", op.id, mapWriteErr(err))
		}
	}
	return nil
}

// Policy returns the policy the kernel currently holds.
func (d *Datapath) Policy() (model.Policy, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rows, enforce, err := d.readPolicy()
	if err != nil {
		return model.Policy{}, err
	}
	return model.Policy{Enforce: enforce, Entries: sortedEntries(rows)}, nil
}

func (d *Datapath) readPolicy() (map[model.PolicyKey]model.PolicyEntry, map[model.Identity]model.Enforcement, error) {
	return readPolicyMaps(d.objs.NmPolicy, d.objs.NmEnforce)
}

func readPolicyMaps(policy, enforceMap *ebpf.Map) (map[model.PolicyKey]model.PolicyEntry, map[model.Identity]model.Enforcement, error) {
	raw, err := readAll[nmbpf.WorkloadPolicyKey, nmbpf.WorkloadPolicyValue](policy)
	if err != nil {
		return nil, nil, err
	}
	rows := make(map[model.PolicyKey]model.PolicyEntry, len(raw))
	for k, v := range raw {
		e := policyEntryFrom(k, v)
		rows[e.Key()] = e
	}
	rawEnf, err := readAll[uint32, uint32](enforceMap)
	if err != nil {
		return nil, nil, err
	}
	enforce := make(map[model.Identity]model.Enforcement, len(rawEnf))
	for k, v := range rawEnf {
		enforce[model.Identity(k)] = model.Enforcement(v)
	}
	return rows, enforce, nil
}
