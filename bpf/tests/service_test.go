package tests

import (
	"net/netip"
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

// What socket-level translation leaves untranslated is dropped under
// egress enforcement even without an exact frontend row: any protocol to
// an address of the Service ranges (an address no Service owns, a deleted
// Service, a port no frontend has), an SCTP frontend (never translated),
// and a NodePort marker on the address of the host or another node (not
// on other addresses, where the port is just a port).
func TestFlowsToServiceRangesAndMarkers(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		// The ranges are the remote prefix here: the world address
		// stays outside them.
		rk := nmbpf.WorkloadIpcacheKey{Prefixlen: uint32(f.remotePfx.Bits()), Addr: a16(f.remotePfx.Addr())}
		if f.remote.Is4() {
			rk.Prefixlen += 96
		}
		if err := h.objs.NmSvcRanges.Put(rk, uint32(1)); err != nil {
			t.Fatal(err)
		}
		put := func(addr [16]uint8, port uint16, proto uint8) {
			t.Helper()
			k := nmbpf.WorkloadSvcKey{Addr: addr, Port: port, Proto: proto}
			if err := h.objs.NmServices.Put(k, nmbpf.WorkloadSvcValue{}); err != nil {
				t.Fatal(err)
			}
		}
		put(a16(f.world), 7777, model.ProtoSCTP)                // an external IP's SCTP port
		put(a16(model.NodePortFrontend), 30080, model.ProtoTCP) // a NodePort
		put(a16(model.NodePortFrontend), 30053, model.ProtoUDP) // a NodePort
		E := model.Egress
		h.policy(egress(row(model.IdentityAny, E, 0, 0, model.Allow)))
		sctp := pkt{src: f.a, dst: f.remote, proto: model.ProtoSCTP, sport: port(), dport: 9}
		expect(t, "TCP into the ranges", h.fromWorkload(tcp(f.a, f.remote, 81)), tcShot, model.DropServiceFrontend, E)
		expect(t, "UDP into the ranges", h.fromWorkload(udp(f.a, f.remote, 53)), tcShot, model.DropServiceFrontend, E)
		expect(t, "SCTP into the ranges", h.fromWorkload(sctp), tcShot, model.DropServiceFrontend, E)
		sctp = pkt{src: f.a, dst: f.world, proto: model.ProtoSCTP, sport: port(), dport: 7777}
		expect(t, "SCTP frontend outside the ranges", h.fromWorkload(sctp), tcShot, model.DropServiceFrontend, E)
		sctp.sport, sctp.dport = port(), 7778
		expect(t, "another SCTP port of that address", h.fromWorkload(sctp), tcOK, model.ReasonForwarded, E)
		expect(t, "NodePort on the host", h.fromWorkload(tcp(f.a, f.host, 30080)), tcShot, model.DropServiceFrontend, E)
		expect(t, "UDP NodePort on the host", h.fromWorkload(udp(f.a, f.host, 30053)), tcShot, model.DropServiceFrontend, E)
		expect(t, "NodePort's number over the other protocol", h.fromWorkload(udp(f.a, f.host, 30080)), tcOK, model.ReasonForwarded, E)
		expect(t, "another port of the host", h.fromWorkload(tcp(f.a, f.host, 30081)), tcOK, model.ReasonForwarded, E)
		expect(t, "the NodePort's number on a world address", h.fromWorkload(tcp(f.a, f.world, 30080)), tcOK, model.ReasonForwarded, E)
		h.ipcache(netip.PrefixFrom(f.world, f.world.BitLen()), model.IdentityRemoteNode, 2)
		expect(t, "NodePort on another node", h.fromWorkload(tcp(f.a, f.world, 30080)), tcShot, model.DropServiceFrontend, E)
		h.policy(model.Policy{})
		expect(t, "into the ranges without enforcement", h.fromWorkload(tcp(f.a, f.remote, 81)), tcOK, model.ReasonForwarded, E)
		expect(t, "NodePort without enforcement", h.fromWorkload(tcp(f.a, f.host, 30080)), tcOK, model.ReasonForwarded, E)
	})
}
