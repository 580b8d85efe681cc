package tests

import (
	"testing"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// A new flow still addressed to a Service frontend cannot be judged by
// egress policy (its real destination is only known after the node's
// NAT): under egress enforcement it is dropped, whatever the rows allow;
// without enforcement it passes on to the node's NAT.
func TestFlowsToServiceFrontends(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		fe := nmbpf.WorkloadSvcKey{Addr: a16(f.remote), Port: 80, Proto: model.ProtoTCP}
		if err := h.objs.NmServices.Put(fe, nmbpf.WorkloadSvcValue{Count: 0}); err != nil {
			t.Fatal(err)
		}
		E := model.Egress
		h.policy(egress(row(model.IdentityAny, E, 0, 0, model.Allow)))
		expect(t, "frontend under egress enforcement", h.fromWorkload(tcp(f.a, f.remote, 80)), tcShot, model.DropServiceFrontend, E)
		expect(t, "same address, a port that is no frontend", h.fromWorkload(tcp(f.a, f.remote, 81)), tcOK, model.ReasonForwarded, E)
		expect(t, "same port over UDP is no frontend", h.fromWorkload(udp(f.a, f.remote, 80)), tcOK, model.ReasonForwarded, E)
		h.policy(model.Policy{})
		expect(t, "frontend without enforcement", h.fromWorkload(tcp(f.a, f.remote, 80)), tcOK, model.ReasonForwarded, E)
	})
}
