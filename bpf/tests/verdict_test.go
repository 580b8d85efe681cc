package tests

import (
	"errors"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/proxylib/conntrack"
)

// Identities of the fixture.
const (
	idA        model.Identity = 1000 // local endpoint A
	idB        model.Identity = 2000 // local endpoint B
	idRemote   model.Identity = 3000 // remote prefix in the ipcache, on node 7
	remoteNode                = 7
	proxyPort                 = 15001
)

// family holds the fixture's addresses for one IP version.
type family struct {
	name        string
	a, b        netip.Addr // local endpoints
	remote      netip.Addr // inside remotePrefix (identity idRemote)
	remotePfx   netip.Prefix
	host        netip.Addr // the node itself (identity host)
	world       netip.Addr // in no table: identity world
	icmp        uint8
	echoRequest uint8
	unreachable uint8
}

var families = []family{
	{
		name: "ipv4", a: netip.MustParseAddr("10.0.0.1"), b: netip.MustParseAddr("10.0.0.2"),
		remote: netip.MustParseAddr("192.0.2.10"), remotePfx: netip.MustParsePrefix("192.0.2.0/24"),
		host: netip.MustParseAddr("10.0.0.254"), world: netip.MustParseAddr("203.0.113.5"),
		icmp: 1, echoRequest: 8, unreachable: 3,
	},
	{
		name: "ipv6", a: netip.MustParseAddr("fd00::1"), b: netip.MustParseAddr("fd00::2"),
		remote: netip.MustParseAddr("2001:db8::10"), remotePfx: netip.MustParsePrefix("2001:db8::/64"),
		host: netip.MustParseAddr("fd00::fe"), world: netip.MustParseAddr("2001:db8:1::5"),
		icmp: 58, echoRequest: 128, unreachable: 1,
	},
}

var nextPort atomic.Uint32

// port returns a source port no other flow of the process used, so every
// packet built with it is a new flow for connection tracking.
func port() uint16 { return uint16(20000 + nextPort.Add(1)%40000) }

func setup(t *testing.T, f family) *harness {
	h := newHarness(t)
	h.endpoint(f.a, 1, idA, h.loIndex)
	h.endpoint(f.b, 2, idB, h.loIndex)
	h.ipcache(f.remotePfx, idRemote, remoteNode)
	h.ipcache(netip.PrefixFrom(f.host, f.host.BitLen()), model.IdentityHost, 0)
	return h
}

func forEachFamily(t *testing.T, fn func(t *testing.T, f family)) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) { fn(t, f) })
	}
}

func tcp(src, dst netip.Addr, dport uint16) pkt {
	return pkt{src: src, dst: dst, proto: 6, sport: port(), dport: dport}
}

func udp(src, dst netip.Addr, dport uint16) pkt {
	return pkt{src: src, dst: dst, proto: 17, sport: port(), dport: dport}
}

func egress(rows ...model.PolicyEntry) model.Policy {
	return model.Policy{Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceEgress}, Entries: rows}
}

func row(remote model.Identity, dir model.Direction, proto uint8, p uint16, v model.Verdict) model.PolicyEntry {
	e := model.PolicyEntry{Subject: idA, Remote: remote, Direction: dir, Proto: proto, Port: p, Verdict: v}
	if v == model.Redirect {
		e.ProxyPort = proxyPort
	}
	return e
}

func expect(t *testing.T, what string, r result, ret uint32, reason model.Reason, dir model.Direction) {
	t.Helper()
	if r.ret != ret || !r.counts || r.reason != reason || r.dir != dir {
		t.Fatalf("%s: got ret %d reason %s dir %s (counted %v); want ret %d reason %s dir %s",
			what, r.ret, r.reason, r.dir, r.counts, ret, reason, dir)
	}
}

func TestEgressVerdicts(t *testing.T) {
	const E, I = model.Egress, model.Ingress
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		for _, tc := range []struct {
			name   string
			policy model.Policy
			mode   datapath.EnforcementMode
			pkt    pkt
			ret    uint32
			reason model.Reason
		}{
			{"unenforced allows", model.Policy{}, 0, tcp(f.a, f.remote, 80), tcOK, model.ReasonForwarded},
			{"enforced without rows denies", egress(), 0, tcp(f.a, f.remote, 80), tcShot, model.DropPolicy},
			{"rows of another direction do not count", egress(row(idRemote, I, 6, 80, model.Allow)), 0, tcp(f.a, f.remote, 80), tcShot, model.DropPolicy},
			{"exact row allows", egress(row(idRemote, E, 6, 80, model.Allow)), 0, tcp(f.a, f.remote, 80), tcOK, model.ReasonForwarded},
			{"exact row, other port", egress(row(idRemote, E, 6, 80, model.Allow)), 0, tcp(f.a, f.remote, 81), tcShot, model.DropPolicy},
			{"exact row, other protocol", egress(row(idRemote, E, 6, 80, model.Allow)), 0, udp(f.a, f.remote, 80), tcShot, model.DropPolicy},
			{"exact row, other identity", egress(row(idRemote, E, 6, 80, model.Allow)), 0, tcp(f.a, f.world, 80), tcShot, model.DropPolicy},
			{"any port of the protocol", egress(row(idRemote, E, 6, 0, model.Allow)), 0, tcp(f.a, f.remote, 9999), tcOK, model.ReasonForwarded},
			{"L3 row allows every protocol", egress(row(idRemote, E, 0, 0, model.Allow)), 0, udp(f.a, f.remote, 53), tcOK, model.ReasonForwarded},
			{"wildcard identity reaches world", egress(row(model.IdentityAny, E, 6, 443, model.Allow)), 0, tcp(f.a, f.world, 443), tcOK, model.ReasonForwarded},
			{"world identity row", egress(row(model.IdentityWorld, E, 6, 443, model.Allow)), 0, tcp(f.a, f.world, 443), tcOK, model.ReasonForwarded},
			{"deny anywhere wins", egress(row(idRemote, E, 6, 80, model.Allow), row(model.IdentityAny, E, 0, 0, model.Deny)), 0, tcp(f.a, f.remote, 80), tcShot, model.DropPolicyDeny},
			{"deny of another port does not", egress(row(idRemote, E, 0, 0, model.Allow), row(model.IdentityAny, E, 6, 22, model.Deny)), 0, tcp(f.a, f.remote, 80), tcOK, model.ReasonForwarded},
			{"port row beats L3 row", egress(row(idRemote, E, 0, 0, model.Allow), row(model.IdentityAny, E, 6, 80, model.Redirect)), 0, tcp(f.a, f.remote, 80), tcShot, model.DropProxyUnavailable},
			{"exact identity beats wildcard at equal L4", egress(row(idRemote, E, 6, 80, model.Redirect), row(model.IdentityAny, E, 6, 80, model.Allow)), 0, tcp(f.a, f.remote, 80), tcShot, model.DropProxyUnavailable},
			{"wildcard applies to other identities", egress(row(idB, E, 6, 80, model.Redirect), row(model.IdentityAny, E, 6, 80, model.Allow)), 0, tcp(f.a, f.remote, 80), tcOK, model.ReasonForwarded},
			{"redirect of UDP is refused", egress(model.PolicyEntry{Subject: idA, Remote: idRemote, Direction: E, Proto: 17, Port: 53, Verdict: model.Redirect, ProxyPort: proxyPort}), 0, udp(f.a, f.remote, 53), tcShot, model.DropProxyUnsupported},
			{"mode never ignores rows", egress(), datapath.EnforceNever, tcp(f.a, f.remote, 80), tcOK, model.ReasonForwarded},
			{"mode always enforces everyone", model.Policy{}, datapath.EnforceAlways, tcp(f.a, f.remote, 80), tcShot, model.DropPolicy},
			{"egress to the host is policy too", egress(), 0, tcp(f.a, f.host, 80), tcShot, model.DropPolicy},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h.policy(tc.policy)
				h.enforceMode(tc.mode)
				expect(t, "first packet", h.fromWorkload(tc.pkt), tc.ret, tc.reason, E)
			})
		}
	})
}

// The programs judge by the table published in nm_policy. A slot left
// empty (nothing the datapath ever leaves behind: it publishes an empty
// table before attaching) means the policy is unknown, so every new flow
// that policy could judge is dropped; mode never still allows all.
func TestWithoutAPublishedPolicyNothingIsAllowed(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		expect(t, "empty table, nothing enforced", h.fromWorkload(tcp(f.a, f.remote, 80)), tcOK, model.ReasonForwarded, model.Egress)
		h.unpublishPolicy()
		expect(t, "no table, egress", h.fromWorkload(tcp(f.a, f.remote, 80)), tcShot, model.DropPolicy, model.Egress)
		expect(t, "no table, ingress from a remote", h.toWorkload(tcp(f.remote, f.a, 80)), tcShot, model.DropPolicy, model.Ingress)
		expect(t, "no table, the host still reaches workloads", h.toWorkload(tcp(f.host, f.a, 80)), tcOK, model.ReasonForwarded, model.Ingress)
		h.enforceMode(datapath.EnforceNever)
		expect(t, "no table, mode never", h.fromWorkload(tcp(f.a, f.remote, 80)), tcOK, model.ReasonForwarded, model.Egress)
		h.enforceMode(0)
		h.policy(egress(row(idRemote, model.Egress, 6, 80, model.Allow)))
		expect(t, "published again", h.fromWorkload(tcp(f.a, f.remote, 80)), tcOK, model.ReasonForwarded, model.Egress)
		expect(t, "published again, other port", h.fromWorkload(tcp(f.a, f.remote, 81)), tcShot, model.DropPolicy, model.Egress)
	})
}

func TestIngressBetweenLocalEndpointsIsDecidedAtTheSender(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		inB := func(rows ...model.PolicyEntry) model.Policy {
			for i := range rows {
				rows[i].Subject = idB
			}
			return model.Policy{Enforce: map[model.Identity]model.Enforcement{idB: model.EnforceIngress}, Entries: rows}
		}
		h.policy(inB())
		expect(t, "B enforces ingress", h.fromWorkload(tcp(f.a, f.b, 80)), tcShot, model.DropPolicy, model.Ingress)

		h.policy(inB(row(idA, model.Ingress, 6, 80, model.Allow)))
		p := tcp(f.a, f.b, 80)
		expect(t, "B allows A", h.fromWorkload(p), tcOK, model.ReasonForwarded, model.Egress)
		expect(t, "delivery to B follows the tracked decision", h.toWorkload(p), tcOK, model.ReasonForwarded, model.Egress)
		expect(t, "B's reply", h.fromWorkload(p.reply()), tcOK, model.ReasonForwarded, model.Egress)

		h.policy(inB(row(idA, model.Ingress, 6, 80, model.Redirect)))
		q := tcp(f.a, f.b, 80)
		expect(t, "B redirects A", h.fromWorkload(q), tcShot, model.DropProxyUnavailable, model.Ingress)
		ct, ok := h.ctEntry(q)
		if !ok || ct.Flags&0x01 == 0 || ct.ProxyPort != proxyPort {
			t.Fatalf("redirected flow tracked as %+v (found %v), want redirect flag and proxy port %d", ct, ok, proxyPort)
		}
	})
}

func TestRedirectFindsTheProxyListener(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(egress(row(idRemote, model.Egress, 6, 80, model.Redirect)))
		expect(t, "nothing listens", h.fromWorkload(tcp(f.a, f.remote, 80)), tcShot, model.DropProxyUnavailable, model.Egress)
		e := h.nextEvent()
		if e.Type != datapath.EventDrop || e.Reason != model.DropProxyUnavailable || e.ProxyPort != proxyPort {
			t.Fatalf("event %+v", e)
		}

		// BPF_PROG_RUN is not tc ingress, so the kernel refuses the
		// assignment itself: DropProxyAssign proves the listener was found.
		for _, addr := range []string{"[::]:15001", "127.0.0.1:15001"} {
			network := "tcp"
			if f.a.Is6() && addr[0] != '[' {
				continue
			}
			l, err := h.ns.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			expect(t, "listener on "+addr, h.fromWorkload(tcp(f.a, f.remote, 80)), tcShot, model.DropProxyAssign, model.Egress)
			l.Close()
		}
		if f.a.Is6() {
			l, err := h.ns.Listen("tcp6", "[::1]:15001")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			expect(t, "listener on ::1", h.fromWorkload(tcp(f.a, f.remote, 80)), tcShot, model.DropProxyAssign, model.Egress)
		}
	})
}

func TestRepliesAlwaysPass(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(model.Policy{Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress}})
		out := tcp(f.a, f.remote, 80)
		expect(t, "egress is not enforced", h.fromWorkload(out), tcOK, model.ReasonForwarded, model.Egress)
		expect(t, "reply into enforced ingress", h.toWorkload(out.reply()), tcOK, model.ReasonForwarded, model.Egress)
		in := tcp(f.remote, f.a, 80)
		expect(t, "new inbound connection", h.toWorkload(in), tcShot, model.DropPolicy, model.Ingress)
	})
}

func TestHostAlwaysReachesWorkloads(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(model.Policy{Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress | model.EnforceEgress}})
		probe := tcp(f.host, f.a, 8080)
		expect(t, "host probe", h.toWorkload(probe), tcOK, model.ReasonForwarded, model.Ingress)
		expect(t, "probe answer despite enforced egress", h.fromWorkload(probe.reply()), tcOK, model.ReasonForwarded, model.Ingress)
		expect(t, "anyone else", h.toWorkload(tcp(f.world, f.a, 8080)), tcShot, model.DropPolicy, model.Ingress)
	})
}

func TestIngressRedirectHairpinsToIngressHook(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(model.Policy{
			Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress},
			Entries: []model.PolicyEntry{row(idRemote, model.Ingress, 6, 80, model.Redirect)},
		})
		syn := tcp(f.remote, f.a, 80)
		wantMark := uint32(0x0200 | proxyPort<<16)
		r := h.toWorkload(syn)
		if r.ret != tcRedirect || r.mark != wantMark {
			t.Fatalf("SYN: ret %d mark %#x, want redirect (7) with mark %#x", r.ret, r.mark, wantMark)
		}
		if e := h.nextEvent(); e.Type != datapath.EventRedirect || e.ProxyPort != proxyPort || e.LocalIdentity != idA || e.RemoteIdentity != idRemote {
			t.Fatalf("redirect event %+v", e)
		}
		ack := syn
		ack.tcpFlags = ackFlag
		if r := h.toWorkload(ack); r.ret != tcRedirect || r.mark != wantMark {
			t.Fatalf("later packet: ret %d mark %#x, want the same hairpin", r.ret, r.mark)
		}
		// The hairpinned packet arrives on the ingress hook with the mark.
		l, err := h.ns.Listen("tcp", "[::]:15001")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		expect(t, "hairpinned packet", h.run(h.objs.FromWorkload, syn.frame(), wantMark, h.loIndex), tcShot, model.DropProxyAssign, model.Ingress)
	})
}

func TestProxyTrafficIsJudgedByItsMarkAndNeverRedirected(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(model.Policy{
			Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress},
			Entries: []model.PolicyEntry{row(idB, model.Ingress, 6, 80, model.Redirect)},
		})
		asB, _ := datapath.ProxyMark(idB)
		upstream := tcp(f.host, f.a, 80)
		r := h.run(h.objs.ToWorkload, upstream.frame(), asB, h.loIndex)
		expect(t, "proxy upstream on behalf of B", r, tcOK, model.ReasonForwarded, model.Ingress)
		if ct, ok := h.ctEntry(upstream); !ok || ct.Flags&0x02 == 0 || ct.Flags&0x01 != 0 {
			t.Fatalf("upstream tracked as %+v (found %v), want from-proxy and no redirect", ct, ok)
		}
		expect(t, "A answers the proxy", h.fromWorkload(upstream.reply()), tcOK, model.ReasonForwarded, model.Ingress)

		asRemote, _ := datapath.ProxyMark(idRemote)
		r = h.run(h.objs.ToWorkload, tcp(f.host, f.a, 80).frame(), asRemote, h.loIndex)
		expect(t, "proxy on behalf of an identity without a row", r, tcShot, model.DropPolicy, model.Ingress)

		anon, _ := datapath.ProxyMark(0)
		r = h.run(h.objs.ToWorkload, tcp(f.host, f.a, 80).frame(), anon, h.loIndex)
		expect(t, "proxy without identity gets no host exemption", r, tcShot, model.DropPolicy, model.Ingress)
	})
}

func TestAuthRequired(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		r := row(idRemote, model.Egress, 6, 80, model.Allow)
		r.Auth = model.AuthSPIFFE
		r.Cookie = 77
		h.policy(egress(r))
		p := tcp(f.a, f.remote, 80)
		expect(t, "no auth entry", h.fromWorkload(p), tcShot, model.DropAuthRequired, model.Egress)
		e := h.nextEvent()
		want := model.AuthKey{Local: idA, Remote: idRemote, RemoteNode: remoteNode, Type: model.AuthSPIFFE}
		if e.Type != datapath.EventAuthRequired || e.AuthKey() != want || e.Cookie != 77 || e.Endpoint != 1 {
			t.Fatalf("event %+v, want auth-required for %+v", e, want)
		}
		if e.Source.Addr() != f.a || e.Destination != netip.AddrPortFrom(f.remote, 80) || e.Source.Port() != p.sport {
			t.Fatalf("event addresses %v -> %v", e.Source, e.Destination)
		}
		h.auth(want, -1)
		expect(t, "expired auth entry", h.fromWorkload(tcp(f.a, f.remote, 80)), tcShot, model.DropAuthRequired, model.Egress)
		h.auth(want, 3600e9)
		expect(t, "valid auth entry", h.fromWorkload(tcp(f.a, f.remote, 80)), tcOK, model.ReasonForwarded, model.Egress)
		other := want
		other.RemoteNode = 8
		h.auth(want, -1)
		h.auth(other, 3600e9)
		expect(t, "entry for another node", h.fromWorkload(tcp(f.a, f.remote, 80)), tcShot, model.DropAuthRequired, model.Egress)
	})
}

func TestSpoofedSourcesAreDropped(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		expect(t, "unknown source", h.fromWorkload(tcp(f.world, f.remote, 80)), tcShot, model.DropSpoofedSource, model.Egress)
		r := h.run(h.objs.FromWorkload, tcp(f.a, f.remote, 80).frame(), 0, h.otherIndex)
		expect(t, "A's address on another interface", r, tcShot, model.DropSpoofedSource, model.Egress)
	})
}

func TestMalformedAndUntouchedPackets(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(egress())
		full := tcp(f.a, f.remote, 80).frame()
		// BPF_PROG_RUN itself refuses frames shorter than a bare IP
		// header, so malformed headers are built inside that length.
		badVersion := append([]byte(nil), full...)
		badVersion[14] = 0x50 | badVersion[14]&0x0F
		expect(t, "wrong IP version", h.run(h.objs.FromWorkload, badVersion, 0, h.loIndex), tcShot, model.DropInvalid, model.Egress)
		if f.a.Is4() {
			longIHL := append([]byte(nil), full...)
			longIHL[14] = 0x4F // 60-byte header: the TCP header would start past the end
			expect(t, "header length beyond the packet", h.run(h.objs.FromWorkload, longIHL, 0, h.loIndex), tcShot, model.DropInvalid, model.Egress)
		}
		l4cut := len(full) - 10
		expect(t, "truncated TCP header", h.run(h.objs.FromWorkload, full[:l4cut], 0, h.loIndex), tcShot, model.DropInvalid, model.Egress)

		arp := make([]byte, 42)
		arp[12], arp[13] = 0x08, 0x06
		if r := h.run(h.objs.FromWorkload, arp, 0, h.loIndex); r.ret != tcOK || r.counts {
			t.Fatalf("ARP: %+v, want untouched pass", r)
		}
		if f.a.Is6() {
			ns := pkt{src: f.a, dst: f.b, proto: 58, icmpType: 135}
			if r := h.fromWorkload(ns); r.ret != tcOK || r.counts {
				t.Fatalf("neighbour solicitation under enforced egress: %+v, want untouched pass", r)
			}
			p := tcp(f.a, f.remote, 80)
			p.v6Ext = 2
			expect(t, "two extension headers", h.fromWorkload(p), tcShot, model.DropPolicy, model.Egress)
			p.v6Ext = 7
			expect(t, "too many extension headers", h.fromWorkload(p), tcShot, model.DropInvalid, model.Egress)
			h.policy(egress(row(idRemote, model.Egress, 6, 80, model.Allow)))
			p = tcp(f.a, f.remote, 80)
			p.v6Ext = 3
			expect(t, "ports found behind extension headers", h.fromWorkload(p), tcOK, model.ReasonForwarded, model.Egress)
		}
	})
}

func TestICMP(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(model.Policy{
			Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress | model.EnforceEgress},
			Entries: []model.PolicyEntry{
				row(idRemote, model.Egress, f.icmp, uint16(f.echoRequest), model.Allow),
				row(idRemote, model.Egress, 6, 80, model.Allow),
			},
		})
		ping := pkt{src: f.a, dst: f.remote, proto: f.icmp, icmpType: f.echoRequest, icmpID: port()}
		ping.sport, ping.dport = ping.icmpID, ping.icmpID
		expect(t, "echo request allowed by type", h.fromWorkload(ping), tcOK, model.ReasonForwarded, model.Egress)
		expect(t, "echo reply", h.toWorkload(ping.reply()), tcOK, model.ReasonForwarded, model.Egress)
		other := pkt{src: f.a, dst: f.remote, proto: f.icmp, icmpType: 13, icmpID: 9}
		if f.icmp == 58 {
			other.icmpType = 139
		}
		expect(t, "other ICMP type", h.fromWorkload(other), tcShot, model.DropPolicy, model.Egress)

		flow := tcp(f.a, f.remote, 80)
		expect(t, "tracked TCP flow", h.fromWorkload(flow), tcOK, model.ReasonForwarded, model.Egress)
		quoted := flow.ipPacket()
		if len(quoted) > 48+20 {
			quoted = quoted[:48+20]
		}
		related := pkt{src: f.remote, dst: f.a, proto: f.icmp, icmpType: f.unreachable, inner: quoted}
		expect(t, "error quoting a tracked flow", h.toWorkload(related), tcOK, model.ReasonForwarded, model.Ingress)
		stray := pkt{src: f.remote, dst: f.a, proto: f.icmp, icmpType: f.unreachable, inner: tcp(f.a, f.remote, 80).ipPacket()}
		expect(t, "error quoting an unknown flow", h.toWorkload(stray), tcShot, model.DropPolicy, model.Ingress)
	})
}

func TestFragments(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(egress(row(idRemote, model.Egress, 6, 80, model.Allow)))
		first := tcp(f.a, f.remote, 80)
		first.fragID, first.moreFrags, first.payload = 77, true, make([]byte, 32)
		expect(t, "first fragment", h.fromWorkload(first), tcOK, model.ReasonForwarded, model.Egress)
		later := first
		later.fragOffset, later.moreFrags = 5, false
		expect(t, "last fragment follows the first", h.fromWorkload(later), tcOK, model.ReasonForwarded, model.Egress)
		expect(t, "fragment of a datagram whose last fragment passed", h.fromWorkload(later), tcShot, model.DropFragUnknown, model.Egress)
		stray := later
		stray.fragID = 78
		expect(t, "fragment without a first", h.fromWorkload(stray), tcShot, model.DropFragUnknown, model.Egress)

		denied := tcp(f.a, f.remote, 81)
		denied.fragID, denied.moreFrags, denied.payload = 79, true, make([]byte, 32)
		expect(t, "denied first fragment", h.fromWorkload(denied), tcShot, model.DropPolicy, model.Egress)
		deniedLater := denied
		deniedLater.fragOffset = 5
		expect(t, "its later fragment keeps the verdict", h.fromWorkload(deniedLater), tcShot, model.DropPolicy, model.Egress)
	})
}

func TestConntrackKeepsEstablishedAndReopensClosed(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(egress(row(idRemote, model.Egress, 6, 80, model.Allow)))
		syn := tcp(f.a, f.remote, 80)
		expect(t, "allowed SYN", h.fromWorkload(syn), tcOK, model.ReasonForwarded, model.Egress)
		expect(t, "SYN-ACK", h.toWorkload(syn.reply()), tcOK, model.ReasonForwarded, model.Egress)

		h.policy(egress())
		ack := syn
		ack.tcpFlags = ackFlag
		expect(t, "established flow after the rule is gone", h.fromWorkload(ack), tcOK, model.ReasonForwarded, model.Egress)
		rst := syn
		rst.tcpFlags = rstFlag
		expect(t, "RST", h.fromWorkload(rst), tcOK, model.ReasonForwarded, model.Egress)
		expect(t, "new SYN on the closed tuple is judged again", h.fromWorkload(syn), tcShot, model.DropPolicy, model.Egress)
	})
}

func TestDropEventsNameTheFlow(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		deny := row(model.IdentityAny, model.Egress, 17, 53, model.Deny)
		deny.Cookie = 4242
		h.policy(egress(deny))
		p := udp(f.a, f.remote, 53)
		expect(t, "denied", h.fromWorkload(p), tcShot, model.DropPolicyDeny, model.Egress)
		e := h.nextEvent()
		if e.Type != datapath.EventDrop || e.Reason != model.DropPolicyDeny || e.Direction != model.Egress ||
			e.Proto != 17 || e.Source != netip.AddrPortFrom(f.a, p.sport) || e.Destination != netip.AddrPortFrom(f.remote, 53) ||
			e.LocalIdentity != idA || e.RemoteIdentity != idRemote || e.RemoteNode != remoteNode || e.Endpoint != 1 ||
			e.Cookie != 4242 || e.IfIndex != h.loIndex {
			t.Fatalf("event %+v", e)
		}
	})
}

// A routing listener's upstream connection (Gateway, GAMMA,
// CiliumEnvoyConfig, ...) applied no L7 ingress policy: it is judged like
// the client's own connection, L7 redirect included, and the policy
// listener's replies to the client's address (original source) go back
// to the proxy, not to the client Pod.
func TestRoutingProxyTrafficIsRedirectedToThePolicyListener(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		h.policy(model.Policy{
			Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress},
			Entries: []model.PolicyEntry{row(idB, model.Ingress, 6, 80, model.Redirect)},
		})
		routed, _ := datapath.ProxyRouteMark(0)
		// Bound to B's address (original source), no identity in the mark.
		upstream := tcp(f.b, f.a, 80)
		wantMark := uint32(0x0200 | proxyPort<<16)
		r := h.run(h.objs.ToWorkload, upstream.frame(), routed, h.loIndex)
		if r.ret != tcRedirect || r.mark != wantMark {
			t.Fatalf("routing listener's SYN: ret %d mark %#x, want the hairpin to the policy listener (mark %#x)", r.ret, r.mark, wantMark)
		}
		if e := h.nextEvent(); e.Type != datapath.EventRedirect || e.RemoteIdentity != idB || e.LocalIdentity != idA {
			t.Fatalf("redirect event %+v, want B to A", e)
		}
		if ct, ok := h.ctEntry(upstream); !ok || ct.Flags&0x01 == 0 || ct.Flags&0x40 == 0 || ct.Flags&0x02 != 0 {
			t.Fatalf("upstream tracked as %+v (found %v), want redirect with a proxy client", ct, ok)
		}
		// The policy listener answers B's address: looped back to the
		// ingress hook, which has no proxy socket for it here and drops.
		r = h.toWorkload(upstream.reply())
		if r.ret != tcRedirect || r.mark != 0x0300 {
			t.Fatalf("policy listener's reply: ret %d mark %#x, want the reply hairpin (mark 0x300)", r.ret, r.mark)
		}
		expect(t, "reply hairpin without a proxy socket", h.run(h.objs.FromWorkload, upstream.reply().frame(), 0x0300, h.loIndex),
			tcShot, model.DropProxyUnavailable, model.Ingress)

		// The identity in the mark wins over the source address.
		asRemote, _ := datapath.ProxyRouteMark(idRemote)
		expect(t, "routing listener on behalf of an identity without a row",
			h.run(h.objs.ToWorkload, tcp(f.b, f.a, 80).frame(), asRemote, h.loIndex), tcShot, model.DropPolicy, model.Ingress)
		// From the node's address without an identity: no host exemption.
		expect(t, "routing listener from the node",
			h.run(h.objs.ToWorkload, tcp(f.host, f.a, 80).frame(), routed, h.loIndex), tcShot, model.DropPolicy, model.Ingress)
		expect(t, "the host itself", h.toWorkload(tcp(f.host, f.a, 80)), tcOK, model.ReasonForwarded, model.Ingress)

		// A policy listener's own upstream, same flow shape: never again.
		policyMark, _ := datapath.ProxyMark(0)
		again := tcp(f.b, f.a, 80)
		expect(t, "policy listener's upstream", h.run(h.objs.ToWorkload, again.frame(), policyMark, h.loIndex), tcOK, model.ReasonForwarded, model.Ingress)
		if ct, ok := h.ctEntry(again); !ok || ct.Flags&0x02 == 0 || ct.Flags&0x41 != 0 {
			t.Fatalf("policy upstream tracked as %+v (found %v), want from-proxy only", ct, ok)
		}
	})
}

// A Gateway's upstream connection carries the reserved ingress identity
// in the routing mark. Where its source address has that identity too
// (the node's ingress address), the policy listener could judge it by
// address. From the node's own address (a node without an ingress
// address) it would be judged as the host, whose L7 rules may admit more:
// the redirect's connection-tracking entry records the marked identity
// and flags it as not the address's (CT_F_MARK_IDENTITY), which is what
// the policy listener reads (proxylib/conntrack) to judge it as ingress.
// That needs a proxy that reads it (CONFIG_F_PROXY_CT_IDENTITY); without
// one, the redirect is refused (DROP_ROUTE_IDENTITY). L4 verdicts are taken here, on the marked identity, and stand. Another
// node's Gateway without an ingress address arrives unmarked from its
// node address (remote-node), which neither rows of ingress nor of the
// host admit.
func TestRoutedIdentityTheAddressLacksIsMarkedInCT(t *testing.T) {
	forEachFamily(t, func(t *testing.T, f family) {
		h := setup(t, f)
		ingressAddr := f.world // made the node's ingress address below
		h.ipcache(netip.PrefixFrom(ingressAddr, ingressAddr.BitLen()), model.IdentityIngress, 0)
		h.policy(model.Policy{
			Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress},
			Entries: []model.PolicyEntry{
				row(model.IdentityIngress, model.Ingress, 6, 80, model.Redirect),
				row(model.IdentityHost, model.Ingress, 6, 80, model.Redirect),
				row(model.IdentityIngress, model.Ingress, 6, 81, model.Allow),
			},
		})
		asIngress, _ := datapath.ProxyRouteMark(model.IdentityIngress)
		wantMark := uint32(0x0200 | proxyPort<<16)
		const markIdentity = 0x80

		fromNode := tcp(f.host, f.a, 80)
		// A proxy that judges peers by address only: refused.
		expect(t, "Gateway from the node's address, address-only proxy",
			h.run(h.objs.ToWorkload, fromNode.frame(), asIngress, h.loIndex), tcShot, model.DropRouteIdentity, model.Ingress)
		if e := h.nextEvent(); e.Type != datapath.EventDrop || e.Reason != model.DropRouteIdentity || e.RemoteIdentity != model.IdentityIngress {
			t.Fatalf("drop event %+v, want a route-identity drop of ingress", e)
		}
		if err := h.objs.NmConfig.Put(uint32(0), nmbpf.WorkloadConfig{Flags: 1 /* CONFIG_F_PROXY_CT_IDENTITY */}); err != nil {
			t.Fatal(err)
		}
		if r := h.run(h.objs.ToWorkload, fromNode.frame(), asIngress, h.loIndex); r.ret != tcRedirect || r.mark != wantMark {
			t.Fatalf("Gateway from the node's address, L7 port: ret %d mark %#x, want the hairpin to the policy listener (mark %#x)", r.ret, r.mark, wantMark)
		}
		ct, ok := h.ctEntry(fromNode)
		if !ok || ct.SrcIdentity != uint32(model.IdentityIngress) || ct.Flags&markIdentity == 0 || ct.Flags&0x41 != 0x41 {
			t.Fatalf("Gateway from the node's address tracked as %+v (found %v); want ingress, redirected, proxy client, marked identity", ct, ok)
		}
		// The proxy's reader of the pinned map sees the same.
		pin := filepath.Join(testbed.BPFFS(t), "nm_ct")
		if err := h.objs.NmCt.Pin(pin); err != nil {
			t.Fatalf("pinning the CT map: %v", err)
		}
		t.Cleanup(func() { h.objs.NmCt.Unpin() })
		m, err := conntrack.Open(pin)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		e, err := m.Lookup(netip.AddrPortFrom(f.host, fromNode.sport), netip.AddrPortFrom(f.a, fromNode.dport))
		if err != nil || e.Identity != uint32(model.IdentityIngress) || !e.MarkIdentity() {
			t.Fatalf("proxy lookup: %+v %v; want ingress, marked identity", e, err)
		}
		if _, err := m.Lookup(netip.AddrPortFrom(f.host, fromNode.sport+1), netip.AddrPortFrom(f.a, fromNode.dport)); !errors.Is(err, conntrack.ErrNotFound) {
			t.Fatalf("proxy lookup of an untracked flow: %v; want ErrNotFound", err)
		}
		expect(t, "Gateway from the node's address, L4 port",
			h.run(h.objs.ToWorkload, tcp(f.host, f.a, 81).frame(), asIngress, h.loIndex), tcOK, model.ReasonForwarded, model.Ingress)

		fromIngress := tcp(ingressAddr, f.a, 80)
		r := h.run(h.objs.ToWorkload, fromIngress.frame(), asIngress, h.loIndex)
		if r.ret != tcRedirect || r.mark != wantMark {
			t.Fatalf("Gateway from the ingress address: ret %d mark %#x, want the hairpin to the policy listener (mark %#x)", r.ret, r.mark, wantMark)
		}
		if ct, ok := h.ctEntry(fromIngress); !ok || ct.SrcIdentity != uint32(model.IdentityIngress) || ct.Flags&markIdentity != 0 {
			t.Fatalf("Gateway from the ingress address tracked as %+v (found %v); want ingress, judged by its address", ct, ok)
		}
		// Without an identity in the mark the address speaks for itself.
		routed, _ := datapath.ProxyRouteMark(0)
		r = h.run(h.objs.ToWorkload, tcp(f.host, f.a, 80).frame(), routed, h.loIndex)
		if r.ret != tcRedirect || r.mark != wantMark {
			t.Fatalf("routing listener from the node without identity: ret %d mark %#x, want the hairpin (mark %#x)", r.ret, r.mark, wantMark)
		}

		// Another node's Gateway without an ingress address: no mark
		// crosses nodes, its node address is remote-node, which neither
		// the host's nor ingress's rows admit (closed, not borrowed).
		otherNode := f.remote.Next()
		h.ipcache(netip.PrefixFrom(otherNode, otherNode.BitLen()), model.IdentityRemoteNode, remoteNode)
		remoteGW := tcp(otherNode, f.a, 80)
		if r := h.fromNetdev(remoteGW); r.ret != tcOK || r.counts {
			t.Fatalf("another node's Gateway at from_netdev: %+v, want it left to to_workload (not redirected)", r)
		}
		expect(t, "another node's Gateway, L7 port", h.toWorkload(remoteGW), tcShot, model.DropPolicy, model.Ingress)
		expect(t, "another node's Gateway, L4 port", h.toWorkload(tcp(otherNode, f.a, 81)), tcShot, model.DropPolicy, model.Ingress)
	})
}
