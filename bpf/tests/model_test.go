package tests

import (
	"math/rand"
	"testing"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// The programs and datapath.PolicyIndex (the documented reference model)
// must agree on every verdict. Random policies over a small universe make
// wildcard, precedence and deny interactions collide often.
func TestProgramsAgreeWithThePolicyModel(t *testing.T) {
	remotes := []model.Identity{idRemote, model.IdentityWorld, idB}
	protos := []uint8{6, 17}
	ports := []uint16{80, 443}
	randomPolicy := func(r *rand.Rand) model.Policy {
		p := model.Policy{Enforce: map[model.Identity]model.Enforcement{}}
		if e := model.Enforcement(r.Intn(4)); e != 0 {
			p.Enforce[idA] = e
		}
		for _, dir := range []model.Direction{model.Ingress, model.Egress} {
			for _, remote := range append([]model.Identity{model.IdentityAny}, remotes...) {
				for _, proto := range append([]uint8{0}, protos...) {
					keyPorts := []uint16{0}
					if proto != 0 {
						keyPorts = append(keyPorts, ports...)
					}
					for _, port := range keyPorts {
						if r.Intn(4) != 0 {
							continue
						}
						e := model.PolicyEntry{Subject: idA, Remote: remote, Direction: dir, Proto: proto, Port: port, Verdict: model.Allow}
						switch r.Intn(6) {
						case 0:
							e.Verdict = model.Deny
						case 1:
							e.Auth = model.AuthSPIFFE
						case 2, 3:
							if proto == 6 {
								e.Verdict, e.ProxyPort = model.Redirect, proxyPort
							}
						}
						p.Entries = append(p.Entries, e)
					}
				}
			}
		}
		return p
	}
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		r := rand.New(rand.NewSource(42))
		checked := 0
		for round := 0; round < 60; round++ {
			pol := randomPolicy(r)
			if err := pol.Validate(); err != nil {
				t.Fatal(err)
			}
			h.policy(pol)
			ix := pol.Index()
			for _, remote := range remotes {
				addr := f.remote
				switch remote {
				case model.IdentityWorld:
					addr = f.world
				case idB:
					addr = f.b
				}
				for _, proto := range protos {
					for _, dport := range append(ports, 8080) {
						for _, dir := range []model.Direction{model.Egress, model.Ingress} {
							if dir == model.Ingress && remote == idB {
								continue // local-to-local ingress is judged at B's egress hook
							}
							d := ix.Decide(model.Query{Subject: idA, Remote: remote, Direction: dir, Proto: proto, Port: dport})
							var p pkt
							var got result
							if dir == model.Egress {
								p = pkt{src: f.a, dst: addr, proto: proto, sport: port(), dport: dport}
								got = h.fromWorkload(p)
							} else {
								p = pkt{src: addr, dst: f.a, proto: proto, sport: port(), dport: dport}
								got = h.toWorkload(p)
							}
							wantRet, wantReason := modelOutcome(d, dir)
							ok := got.ret == wantRet && got.counts && got.reason == wantReason && got.dir == dir
							if wantRet == tcRedirect {
								ok = got.ret == tcRedirect && !got.counts
							}
							if !ok {
								t.Fatalf("round %d: %s %s proto %d port %d from identity %s: program gives ret %d %s (%s), model %+v expects ret %d %s\npolicy: %+v",
									round, f.name, dir, proto, dport, remote, got.ret, got.reason, got.dir, d, wantRet, wantReason, pol)
							}
							checked++
						}
					}
				}
			}
			h.drainEvents()
		}
		t.Logf("%d flows agreed", checked)
	})
}

// modelOutcome is what the program does for a model decision, with no
// auth entries and no proxy listening.
func modelOutcome(d model.Decision, dir model.Direction) (uint32, model.Reason) {
	if d.Verdict == model.Deny {
		return tcShot, d.Reason
	}
	if d.Auth != model.AuthNone {
		return tcShot, model.DropAuthRequired
	}
	if d.Verdict == model.Redirect {
		if dir == model.Ingress {
			// The egress hook hands the packet to the ingress hook,
			// which counts it there.
			return tcRedirect, 0
		}
		return tcShot, model.DropProxyUnavailable
	}
	return tcOK, model.ReasonForwarded
}
