package tests

import (
	"testing"

	"github.com/nodemesh/nodemesh/datapath/model"
)

func TestFromNetdevActsOnlyOnRedirects(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(model.Policy{
			Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress},
			Entries: []model.PolicyEntry{
				row(idRemote, model.Ingress, 6, 80, model.Redirect),
				row(idRemote, model.Ingress, 6, 443, model.Allow),
			},
		})
		untouched := func(what string, r result) {
			t.Helper()
			if r.ret != tcOK || r.counts {
				t.Fatalf("%s: %+v, want an uncounted pass (left to the workload's hook)", what, r)
			}
		}
		untouched("not for a workload", h.fromNetdev(tcp(f.remote, f.world, 80)))
		allowed := tcp(f.remote, f.a, 443)
		untouched("allowed flow", h.fromNetdev(allowed))
		if _, ok := h.ctEntry(allowed); ok {
			t.Fatal("from_netdev tracked an allowed flow; to_workload owns that decision")
		}
		untouched("denied flow", h.fromNetdev(tcp(f.world, f.a, 80)))

		syn := tcp(f.remote, f.a, 80)
		expect(t, "redirected SYN", h.fromNetdev(syn), tcShot, model.DropProxyUnavailable, model.Ingress)
		ct, ok := h.ctEntry(syn)
		if !ok || ct.Flags&0x01 == 0 || ct.ProxyPort != proxyPort {
			t.Fatalf("redirected flow tracked as %+v (found %v)", ct, ok)
		}
		l, err := h.ns.Listen("tcp", "[::]:15001")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ack := syn
		ack.tcpFlags = ackFlag
		expect(t, "later packet of the flow", h.fromNetdev(ack), tcShot, model.DropProxyAssign, model.Ingress)
		untouched("reply direction", h.fromNetdev(allowed.reply()))
	})
}
