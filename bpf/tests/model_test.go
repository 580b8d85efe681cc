package tests

import (
	"math/rand"
	"testing"

	"github.com/nodemesh/nodemesh/datapath"
)

// The programs and datapath.PolicyIndex (the documented reference model)
// must agree on every verdict. Random policies over a small universe make
// wildcard, precedence and deny interactions collide often.
func TestProgramsAgreeWithThePolicyModel(t *testing.T) {
	remotes := []datapath.Identity{idRemote, datapath.IdentityWorld, idB}
	protos := []uint8{6, 17}
	ports := []uint16{80, 443}
	randomPolicy := func(r *rand.Rand) datapath.Policy {
		p := datapath.Policy{Enforce: map[datapath.Identity]datapath.Enforcement{}}
		if e := datapath.Enforcement(r.Intn(4)); e != 0 {
			p.Enforce[idA] = e
		}
		for _, dir := range []datapath.Direction{datapath.Ingress, datapath.Egress} {
			for _, remote := range append([]datapath.Identity{datapath.IdentityAny}, remotes...) {
				for _, proto := range append([]uint8{0}, protos...) {
					keyPorts := []uint16{0}
					if proto != 0 {
						keyPorts = append(keyPorts, ports...)
					}
					for _, port := range keyPorts {
						if r.Intn(4) != 0 {
							continue
						}
						e := datapath.PolicyEntry{Subject: idA, Remote: remote, Direction: dir, Proto: proto, Port: port, Verdict: datapath.Allow}
						switch r.Intn(6) {
						case 0:
							e.Verdict = datapath.Deny
						case 1:
							e.Auth = datapath.AuthSPIFFE
						case 2, 3:
							if proto == 6 {
								e.Verdict, e.ProxyPort = datapath.Redirect, proxyPort
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
				case datapath.IdentityWorld:
					addr = f.world
				case idB:
					addr = f.b
				}
				for _, proto := range protos {
					for _, dport := range append(ports, 8080) {
						for _, dir := range []datapath.Direction{datapath.Egress, datapath.Ingress} {
							if dir == datapath.Ingress && remote == idB {
								continue // local-to-local ingress is judged at B's egress hook
							}
							d := ix.Decide(datapath.Query{Subject: idA, Remote: remote, Direction: dir, Proto: proto, Port: dport})
							var p pkt
							var got result
							if dir == datapath.Egress {
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
func modelOutcome(d datapath.Decision, dir datapath.Direction) (uint32, datapath.Reason) {
	if d.Verdict == datapath.Deny {
		return tcShot, d.Reason
	}
	if d.Auth != datapath.AuthNone {
		return tcShot, datapath.DropAuthRequired
	}
	if d.Verdict == datapath.Redirect {
		if dir == datapath.Ingress {
			// The egress hook hands the packet to the ingress hook,
			// which counts it there.
			return tcRedirect, 0
		}
		return tcShot, datapath.DropProxyUnavailable
	}
	return tcOK, datapath.ReasonForwarded
}
