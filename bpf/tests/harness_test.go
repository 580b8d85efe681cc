package tests

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// tc return codes.
const (
	tcOK       = 0
	tcShot     = 2
	tcRedirect = 7
)

// harness is one freshly loaded copy of the programs with empty, unpinned
// maps, run inside a namespace of its own so socket lookups see nothing
// of the machine.
type harness struct {
	t      testing.TB
	objs   nmbpf.WorkloadObjects
	netdev nmbpf.NetdevObjects
	ns     *testbed.Namespace
	events *ringbuf.Reader
	// loIndex is the workloads' interface in these tests (loopback of the
	// private namespace); otherIndex is a second interface.
	loIndex, otherIndex int
	policyTable         *ebpf.MapSpec // what policy publishes in nm_policy
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	testbed.RequireRoot(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	spec, err := nmbpf.LoadWorkload()
	if err != nil {
		t.Fatal(err)
	}
	netdevSpec, err := nmbpf.LoadNetdev()
	if err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]uint32{
		nmbpf.WorkloadMapNmCt: 4096, nmbpf.WorkloadMapNmAuth: 1024, nmbpf.WorkloadMapNmIpcache: 1024,
		nmbpf.WorkloadMapNmEvents: 1 << 16,
	} {
		spec.Maps[name].MaxEntries = size
		netdevSpec.Maps[name].MaxEntries = size
	}
	spec.Maps[nmbpf.WorkloadMapNmPolicy].InnerMap.MaxEntries = 4096
	netdevSpec.Maps[nmbpf.WorkloadMapNmPolicy].InnerMap.MaxEntries = 4096
	h := &harness{t: t, ns: testbed.NewNS(t, "bpfunit"), loIndex: 1, policyTable: spec.Maps[nmbpf.WorkloadMapNmPolicy].InnerMap}
	if err := spec.LoadAndAssign(&h.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("verifier: %+v", ve)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { h.objs.Close() })
	h.policy(model.Policy{})
	shared := map[string]*ebpf.Map{}
	for name := range netdevSpec.Maps {
		shared[name] = mapByName(&h.objs.WorkloadMaps, name)
	}
	if err := netdevSpec.LoadAndAssign(&h.netdev, &ebpf.CollectionOptions{MapReplacements: shared}); err != nil {
		t.Fatalf("loading netdev program: %v", err)
	}
	t.Cleanup(func() { h.netdev.Close() })
	if h.events, err = ringbuf.NewReader(h.objs.NmEvents); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.events.Close() })
	err = h.ns.Netlink(func(nl *netlink.Handle) error {
		if err := nl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "other0"}, PeerName: "other1"}); err != nil {
			return err
		}
		l, err := nl.LinkByName("other0")
		if err != nil {
			return err
		}
		h.otherIndex = l.Attrs().Index
		return nl.LinkSetUp(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func a16(a netip.Addr) [16]uint8 { return a.Unmap().As16() }

func (h *harness) endpoint(addr netip.Addr, id uint16, identity model.Identity, ifindex int) {
	h.t.Helper()
	k := nmbpf.WorkloadEndpointKey{Addr: a16(addr)}
	v := nmbpf.WorkloadEndpointInfo{Identity: uint32(identity), Ifindex: uint32(ifindex), Id: id}
	if err := h.objs.NmEndpoints.Put(k, v); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) ipcache(p netip.Prefix, identity model.Identity, node uint16) {
	h.t.Helper()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	k := nmbpf.WorkloadIpcacheKey{Prefixlen: uint32(bits), Addr: a16(p.Masked().Addr())}
	if err := h.objs.NmIpcache.Put(k, nmbpf.WorkloadIpcacheValue{Identity: uint32(identity), Node: node}); err != nil {
		h.t.Fatal(err)
	}
}

// policy publishes a policy table holding p, as the datapath does.
func (h *harness) policy(p model.Policy) {
	h.t.Helper()
	table, err := ebpf.NewMap(h.policyTable)
	if err != nil {
		h.t.Fatal(err)
	}
	defer table.Close()
	for id, e := range p.Enforce {
		if err := table.Put(nmbpf.WorkloadPolicyKey{Subject: uint32(id)}, nmbpf.WorkloadPolicyValue{Verdict: uint8(e)}); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, e := range p.Entries {
		k := nmbpf.WorkloadPolicyKey{Subject: uint32(e.Subject), Remote: uint32(e.Remote), Port: e.Port, Proto: e.Proto, Direction: uint8(e.Direction)}
		v := nmbpf.WorkloadPolicyValue{Verdict: uint8(e.Verdict), AuthType: uint8(e.Auth), ProxyPort: e.ProxyPort, Cookie: e.Cookie}
		if err := table.Put(k, v); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := h.objs.NmPolicy.Put(uint32(0), table); err != nil {
		h.t.Fatal(err)
	}
}

// unpublishPolicy empties the policy slot.
func (h *harness) unpublishPolicy() {
	h.t.Helper()
	if err := h.objs.NmPolicy.Delete(uint32(0)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) enforceMode(m datapath.EnforcementMode) {
	h.t.Helper()
	if err := h.objs.NmConfig.Put(uint32(0), nmbpf.WorkloadConfig{EnforceMode: uint32(m)}); err != nil {
		h.t.Fatal(err)
	}
}

func bootNow(t testing.TB) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

func (h *harness) auth(k model.AuthKey, validFor time.Duration) {
	h.t.Helper()
	key := nmbpf.WorkloadAuthKey{Local: uint32(k.Local), Remote: uint32(k.Remote), RemoteNode: k.RemoteNode, AuthType: uint8(k.Type)}
	exp := bootNow(h.t) + validFor
	if err := h.objs.NmAuth.Put(key, nmbpf.WorkloadAuthValue{Expiry: uint64(exp)}); err != nil {
		h.t.Fatal(err)
	}
}

// skbCtx is struct __sk_buff as BPF_PROG_RUN takes it: only mark and
// ifindex are set.
const skbCtxSize = 192

func skbCtx(mark uint32, ifindex int) []byte {
	b := make([]byte, skbCtxSize)
	binary.NativeEndian.PutUint32(b[8:], mark)
	binary.NativeEndian.PutUint32(b[40:], uint32(ifindex))
	return b
}

// result is what one run of a program did.
type result struct {
	ret    uint32
	mark   uint32
	reason model.Reason
	dir    model.Direction
	counts bool // a counter moved (non-IP and link-control packets move none)
}

func (h *harness) counters() map[uint32]uint64 {
	out := map[uint32]uint64{}
	for slot := uint32(0); slot < 32; slot++ {
		var per []nmbpf.WorkloadCounter
		if err := h.objs.NmCounters.Lookup(slot, &per); err != nil {
			h.t.Fatal(err)
		}
		for _, c := range per {
			out[slot] += c.Packets
		}
	}
	return out
}

func (h *harness) run(prog *ebpf.Program, frame []byte, mark uint32, ifindex int) result {
	h.t.Helper()
	before := h.counters()
	ctxOut := make([]byte, skbCtxSize)
	var ret uint32
	err := h.ns.Do(func() error {
		var err error
		ret, err = prog.Run(&ebpf.RunOptions{Data: frame, Context: skbCtx(mark, ifindex), ContextOut: ctxOut})
		return err
	})
	if err != nil {
		h.t.Fatalf("BPF_PROG_RUN: %v", err)
	}
	r := result{ret: ret, mark: binary.NativeEndian.Uint32(ctxOut[8:])}
	after := h.counters()
	for slot, n := range after {
		if n != before[slot] {
			if r.counts {
				h.t.Fatalf("one packet moved two counters (slot %d and reason %s)", slot, r.reason)
			}
			r.counts = true
			r.reason = model.Reason(slot >> 1)
			r.dir = model.Direction(slot&1 + 1)
		}
	}
	return r
}

func (h *harness) fromWorkload(p pkt) result {
	return h.run(h.objs.FromWorkload, p.frame(), 0, h.loIndex)
}

func (h *harness) toWorkload(p pkt) result {
	return h.run(h.objs.ToWorkload, p.frame(), 0, h.loIndex)
}

// nextEvent returns the next ring buffer event, failing the test if none
// arrives.
func (h *harness) nextEvent() datapath.Event {
	h.t.Helper()
	h.events.SetDeadline(time.Now().Add(time.Second))
	rec, err := h.events.Read()
	if err != nil {
		h.t.Fatalf("reading event: %v", err)
	}
	e, err := datapath.DecodeEvent(rec.RawSample)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

// drainEvents discards pending events.
func (h *harness) drainEvents() {
	for {
		h.events.SetDeadline(time.Now())
		if _, err := h.events.Read(); err != nil {
			return
		}
	}
}

func (h *harness) ctEntry(p pkt) (nmbpf.WorkloadCtEntry, bool) {
	k := nmbpf.WorkloadTuple{Saddr: a16(p.src), Daddr: a16(p.dst), Sport: p.sport, Dport: p.dport, Proto: p.proto}
	var e nmbpf.WorkloadCtEntry
	err := h.objs.NmCt.Lookup(k, &e)
	return e, err == nil
}

func mapByName(m *nmbpf.WorkloadMaps, name string) *ebpf.Map {
	return map[string]*ebpf.Map{
		nmbpf.WorkloadMapNmAuth: m.NmAuth, nmbpf.WorkloadMapNmConfig: m.NmConfig, nmbpf.WorkloadMapNmCounters: m.NmCounters,
		nmbpf.WorkloadMapNmCt: m.NmCt, nmbpf.WorkloadMapNmEndpoints: m.NmEndpoints,
		nmbpf.WorkloadMapNmEvents: m.NmEvents, nmbpf.WorkloadMapNmFrag: m.NmFrag, nmbpf.WorkloadMapNmIpcache: m.NmIpcache,
		nmbpf.WorkloadMapNmLost: m.NmLost, nmbpf.WorkloadMapNmPolicy: m.NmPolicy,
		nmbpf.WorkloadMapNmRevnat: m.NmRevnat, nmbpf.WorkloadMapNmServices: m.NmServices,
		nmbpf.WorkloadMapNmSvcRanges: m.NmSvcRanges,
	}[name]
}

func (h *harness) fromNetdev(p pkt) result {
	return h.run(h.netdev.FromNetdev, p.frame(), 0, h.otherIndex)
}
