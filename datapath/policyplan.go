package datapath

import (
	"sort"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// The policy map is updated row by row while packets are being judged, so
// the order of the writes is part of the security model. planPolicy orders
// them so that at every intermediate state each new flow gets either the
// verdict of the old policy, the verdict of the new policy, or a drop —
// never an allow (or an L7-bypassing allow) that neither policy grants.
//
// The phases, and why each is safe (a flow's "chain" is the up to six keys
// a lookup consults, see PolicyIndex.Decide):
//
//	0. Enforcement bits that go away are cleared. The new policy allows
//	   everything for that identity and direction, so this is already the
//	   new verdict.
//	1. Deny rows of the new policy are written. A deny in a chain decides
//	   alone, and the new policy denies those flows too.
//	2. New or changed non-deny rows (not previously deny) are written, most
//	   specific first. The first row present is then either one already
//	   holding its new value, with every more specific new row present (the
//	   new verdict), or an untouched old row with no more specific old row
//	   removed yet (the old verdict).
//	3. Non-deny rows the new policy drops are deleted, least specific
//	   first: by the mirror argument the first row present is the old or
//	   the new policy's.
//	4. Old deny rows are deleted or turned into their new non-deny values.
//	   Until the last one of a chain goes, the flow is denied (old verdict);
//	   when it goes, the whole chain holds the new policy.
//	5. Enforcement bits that appear are set, after every row is in place:
//	   before that the identity allowed everything (old verdict), after it
//	   the new rows apply in one step.
//
// A failed write is undone by replaying the applied steps backwards, which
// only revisits states already shown to be safe.

type policyOpKind uint8

const (
	opPutRow policyOpKind = iota + 1
	opDeleteRow
	opSetEnforce // enforce == 0 deletes the identity's entry
)

type policyOp struct {
	kind    policyOpKind
	entry   model.PolicyEntry // opPutRow: the new row; opDeleteRow: the row removed
	prev    *model.PolicyEntry
	id      model.Identity
	enforce model.Enforcement
	prevEnf model.Enforcement
}

// planPolicy returns the ordered writes that turn (curEnforce, curRows)
// into want. want must be valid.
func planPolicy(curEnforce map[model.Identity]model.Enforcement, curRows map[model.PolicyKey]model.PolicyEntry, want model.Policy) []policyOp {
	wantRows := make(map[model.PolicyKey]model.PolicyEntry, len(want.Entries))
	for _, e := range want.Entries {
		wantRows[e.Key()] = e
	}
	var ops, denyPuts, puts, laterPuts, deletes, denyDeletes, enforceOff, enforceOn []policyOp

	ids := map[model.Identity]bool{}
	for id := range curEnforce {
		ids[id] = true
	}
	for id := range want.Enforce {
		ids[id] = true
	}
	for id := range ids {
		old, nw := curEnforce[id], want.Enforce[id]
		if old == nw {
			continue
		}
		mid := old & nw
		if mid != old {
			enforceOff = append(enforceOff, policyOp{kind: opSetEnforce, id: id, enforce: mid, prevEnf: old})
		}
		if nw != mid {
			enforceOn = append(enforceOn, policyOp{kind: opSetEnforce, id: id, enforce: nw, prevEnf: mid})
		}
	}
	for key, nw := range wantRows {
		old, had := curRows[key]
		if had && old == nw {
			continue
		}
		op := policyOp{kind: opPutRow, entry: nw}
		if had {
			prev := old
			op.prev = &prev
		}
		switch {
		case nw.Verdict == model.Deny:
			denyPuts = append(denyPuts, op)
		case had && old.Verdict == model.Deny:
			laterPuts = append(laterPuts, op)
		default:
			puts = append(puts, op)
		}
	}
	for key, old := range curRows {
		if _, keep := wantRows[key]; keep {
			continue
		}
		prev := old
		op := policyOp{kind: opDeleteRow, entry: old, prev: &prev}
		if old.Verdict == model.Deny {
			denyDeletes = append(denyDeletes, op)
		} else {
			deletes = append(deletes, op)
		}
	}

	byID := func(s []policyOp) {
		sort.Slice(s, func(i, j int) bool { return s[i].id < s[j].id })
	}
	byKey := func(s []policyOp) {
		sort.Slice(s, func(i, j int) bool { return keyLess(s[i].entry.Key(), s[j].entry.Key()) })
	}
	mostSpecificFirst := func(s []policyOp) {
		sort.SliceStable(s, func(i, j int) bool {
			return specificity(s[i].entry.Key()) > specificity(s[j].entry.Key())
		})
	}
	leastSpecificFirst := func(s []policyOp) {
		sort.SliceStable(s, func(i, j int) bool {
			return specificity(s[i].entry.Key()) < specificity(s[j].entry.Key())
		})
	}
	byID(enforceOff)
	byID(enforceOn)
	for _, s := range [][]policyOp{denyPuts, puts, laterPuts, deletes, denyDeletes} {
		byKey(s)
	}
	mostSpecificFirst(puts)
	leastSpecificFirst(deletes)

	ops = append(ops, enforceOff...)
	ops = append(ops, denyPuts...)
	ops = append(ops, puts...)
	ops = append(ops, deletes...)
	ops = append(ops, laterPuts...)
	ops = append(ops, denyDeletes...)
	ops = append(ops, enforceOn...)
	return ops
}

// undo returns the operation that reverts op.
func (op policyOp) undo() policyOp {
	switch op.kind {
	case opSetEnforce:
		return policyOp{kind: opSetEnforce, id: op.id, enforce: op.prevEnf, prevEnf: op.enforce}
	case opDeleteRow:
		return policyOp{kind: opPutRow, entry: *op.prev}
	default:
		if op.prev == nil {
			e := op.entry
			return policyOp{kind: opDeleteRow, entry: e, prev: &e}
		}
		e := op.entry
		return policyOp{kind: opPutRow, entry: *op.prev, prev: &e}
	}
}

// peakRows is the largest number of rows present at any point of the plan:
// every put of a new key happens before any delete.
func peakRows(curRows map[model.PolicyKey]model.PolicyEntry, ops []policyOp) int {
	n := len(curRows)
	for _, op := range ops {
		if op.kind == opPutRow && op.prev == nil {
			n++
		}
	}
	return n
}

// specificity orders keys for the update plan: higher is more specific.
func specificity(k model.PolicyKey) int {
	s := 0
	switch {
	case k.Port != 0:
		s = 4
	case k.Proto != model.ProtoAny:
		s = 2
	}
	if k.Remote != model.IdentityAny {
		s++
	}
	return s
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
