package datapath

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// simState is a policy table as the kernel would hold it mid-update.
type simState struct {
	enforce map[model.Identity]model.Enforcement
	rows    map[model.PolicyKey]model.PolicyEntry
}

func newSim(p model.Policy) simState {
	s := simState{enforce: map[model.Identity]model.Enforcement{}, rows: map[model.PolicyKey]model.PolicyEntry{}}
	for id, e := range p.Enforce {
		s.enforce[id] = e
	}
	for _, e := range p.Entries {
		s.rows[e.Key()] = e
	}
	return s
}

func (s simState) apply(op policyOp) {
	switch op.kind {
	case opPutRow:
		s.rows[op.entry.Key()] = op.entry
	case opDeleteRow:
		delete(s.rows, op.entry.Key())
	case opSetEnforce:
		if op.enforce == 0 {
			delete(s.enforce, op.id)
		} else {
			s.enforce[op.id] = op.enforce
		}
	}
}

func (s simState) policy() model.Policy {
	p := model.Policy{Enforce: map[model.Identity]model.Enforcement{}}
	for id, e := range s.enforce {
		p.Enforce[id] = e
	}
	for _, e := range s.rows {
		p.Entries = append(p.Entries, e)
	}
	return p
}

type outcome struct {
	v    model.Verdict
	port uint16
	auth model.AuthType
}

func outcomeOf(d model.Decision) outcome { return outcome{d.Verdict, d.ProxyPort, d.Auth} }

var (
	planSubjects = []model.Identity{100, 101}
	planRemotes  = []model.Identity{200, 201}
	planProtos   = []uint8{model.ProtoAny, model.ProtoTCP, model.ProtoUDP}
	planPorts    = []uint16{80, 443}
)

func randomPolicy(r *rand.Rand) model.Policy {
	p := model.Policy{Enforce: map[model.Identity]model.Enforcement{}}
	for _, s := range planSubjects {
		if e := model.Enforcement(r.Intn(4)); e != 0 {
			p.Enforce[s] = e
		}
	}
	for _, s := range planSubjects {
		for _, dir := range []model.Direction{model.Ingress, model.Egress} {
			for _, remote := range append([]model.Identity{model.IdentityAny}, planRemotes...) {
				for _, proto := range planProtos {
					ports := []uint16{0}
					if proto != model.ProtoAny {
						ports = append(ports, planPorts...)
					}
					for _, port := range ports {
						if r.Intn(3) != 0 {
							continue
						}
						e := model.PolicyEntry{Subject: s, Remote: remote, Direction: dir, Proto: proto, Port: port}
						switch r.Intn(5) {
						case 0:
							e.Verdict = model.Deny
						case 1, 2:
							e.Verdict = model.Allow
							if r.Intn(4) == 0 {
								e.Auth = model.AuthSPIFFE
							}
						default:
							if proto != model.ProtoTCP {
								e.Verdict = model.Allow
								break
							}
							e.Verdict = model.Redirect
							e.ProxyPort = uint16(15000 + r.Intn(2))
						}
						p.Entries = append(p.Entries, e)
					}
				}
			}
		}
	}
	return p
}

// planQueries covers every chain the random policies can build, plus
// flows no row names.
func planQueries() []model.Query {
	var qs []model.Query
	for _, s := range planSubjects {
		for _, dir := range []model.Direction{model.Ingress, model.Egress} {
			for _, remote := range append(planRemotes, 299) {
				for _, proto := range []uint8{model.ProtoTCP, model.ProtoUDP, model.ProtoICMP} {
					for _, port := range append(planPorts, 8080) {
						qs = append(qs, model.Query{Subject: s, Remote: remote, Direction: dir, Proto: proto, Port: port})
					}
				}
			}
		}
	}
	return qs
}

// checkPlan replays ops from old and reports the first intermediate state
// in which a flow gets a verdict neither policy gives it (drops are always
// acceptable).
func checkPlan(old, want model.Policy, ops []policyOp) error {
	oldIx, newIx := old.Index(), want.Index()
	qs := planQueries()
	s := newSim(old)
	for i, op := range ops {
		s.apply(op)
		ix := s.policy().Index()
		for _, q := range qs {
			got := outcomeOf(ix.Decide(q))
			if got.v == model.Deny {
				continue
			}
			if got != outcomeOf(oldIx.Decide(q)) && got != outcomeOf(newIx.Decide(q)) {
				return fmt.Errorf("after op %d of %d: %+v gets %+v; old policy gives %+v, new gives %+v",
					i+1, len(ops), q, got, outcomeOf(oldIx.Decide(q)), outcomeOf(newIx.Decide(q)))
			}
		}
	}
	return nil
}

func TestPlanPolicyNeverOpensAWindow(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 400; i++ {
		old, want := randomPolicy(r), randomPolicy(r)
		ops := planPolicy(old.Enforce, newSim(old).rows, want)
		if err := checkPlan(old, want, ops); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		final := newSim(old)
		for _, op := range ops {
			final.apply(op)
		}
		wantSim := newSim(want)
		if fmt.Sprint(sortedEntries(final.rows)) != fmt.Sprint(sortedEntries(wantSim.rows)) ||
			fmt.Sprint(final.enforce) != fmt.Sprint(wantSim.enforce) {
			t.Fatalf("case %d: plan does not reach the desired policy", i)
		}
		if again := planPolicy(want.Enforce, wantSim.rows, want); len(again) != 0 {
			t.Fatalf("case %d: plan from the desired state is not empty: %d ops", i, len(again))
		}
	}
}

func TestPlanPolicyUndoIsSafe(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for i := 0; i < 200; i++ {
		old, want := randomPolicy(r), randomPolicy(r)
		ops := planPolicy(old.Enforce, newSim(old).rows, want)
		if len(ops) == 0 {
			continue
		}
		cut := r.Intn(len(ops))
		var replay []policyOp
		replay = append(replay, ops[:cut]...)
		for j := cut - 1; j >= 0; j-- {
			replay = append(replay, ops[j].undo())
		}
		if err := checkPlan(old, want, replay); err != nil {
			t.Fatalf("case %d: rollback after %d ops: %v", i, cut, err)
		}
		s := newSim(old)
		for _, op := range replay {
			s.apply(op)
		}
		if fmt.Sprint(sortedEntries(s.rows)) != fmt.Sprint(sortedEntries(newSim(old).rows)) {
			t.Fatalf("case %d: rollback does not restore the old rows", i)
		}
	}
}

// The checker must be able to see an unsafe order, or the tests above
// prove nothing: writing rows in key order (and enforcement first) opens
// windows for some pair of random policies.
func TestPlanCheckerDetectsUnsafeOrder(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for i := 0; i < 400; i++ {
		old, want := randomPolicy(r), randomPolicy(r)
		ops := planPolicy(old.Enforce, newSim(old).rows, want)
		var naive []policyOp
		for _, op := range ops {
			if op.kind == opSetEnforce {
				naive = append(naive, op)
			}
		}
		var rows []policyOp
		for _, op := range ops {
			if op.kind != opSetEnforce {
				rows = append(rows, op)
			}
		}
		r.Shuffle(len(rows), func(a, b int) { rows[a], rows[b] = rows[b], rows[a] })
		naive = append(naive, rows...)
		if checkPlan(old, want, naive) != nil {
			return
		}
	}
	t.Fatal("400 shuffled plans all passed the checker; it cannot tell safe from unsafe")
}

func TestPeakRows(t *testing.T) {
	old := model.Policy{Entries: []model.PolicyEntry{
		{Subject: 1, Direction: model.Ingress, Proto: model.ProtoTCP, Port: 80, Verdict: model.Allow},
		{Subject: 1, Direction: model.Ingress, Proto: model.ProtoTCP, Port: 81, Verdict: model.Allow},
	}}
	want := model.Policy{Entries: []model.PolicyEntry{
		{Subject: 1, Direction: model.Ingress, Proto: model.ProtoTCP, Port: 80, Verdict: model.Deny},
		{Subject: 1, Direction: model.Ingress, Proto: model.ProtoTCP, Port: 82, Verdict: model.Allow},
	}}
	ops := planPolicy(nil, newSim(old).rows, want)
	if got := peakRows(newSim(old).rows, ops); got != 3 {
		t.Fatalf("peak rows = %d, want 3 (two old rows plus one new key before the delete)", got)
	}
}
