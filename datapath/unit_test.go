package datapath

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/proxylib/transparent"
)

func TestProxyMarkMatchesTheProxysMark(t *testing.T) {
	for _, id := range []model.Identity{0, 1, 8, 1000, 0x12345, model.MaxMarkIdentity} {
		ours, err := ProxyMark(id)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := transparent.UpstreamMark(uint32(id))
		if err != nil {
			t.Fatal(err)
		}
		if ours != theirs {
			t.Fatalf("identity %d: datapath mark %#x, proxy mark %#x", id, ours, theirs)
		}
		if ours&MarkMagicMask != MarkFromProxy {
			t.Fatalf("mark %#x lacks the from-proxy magic", ours)
		}
	}
	if _, err := ProxyMark(model.MaxMarkIdentity + 1); err == nil {
		t.Fatal("ProxyMark accepted a 25-bit identity")
	}
	for _, id := range []model.Identity{0, 8, 0x12345, model.MaxMarkIdentity} {
		ours, err := ProxyRouteMark(id)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := transparent.RouteUpstreamMark(uint32(id))
		if err != nil {
			t.Fatal(err)
		}
		policy, _ := ProxyMark(id)
		if ours != theirs || ours&MarkMagicMask != MarkFromProxyRoute || ours&^MarkMagicMask != policy&^MarkMagicMask {
			t.Fatalf("identity %d: route mark %#x, proxy's %#x, policy mark %#x", id, ours, theirs, policy)
		}
	}
	if _, err := ProxyRouteMark(model.MaxMarkIdentity + 1); err == nil {
		t.Fatal("ProxyRouteMark accepted a 25-bit identity")
	}
}

func TestIPCacheKeyEncoding(t *testing.T) {
	k := ipcacheKey(netip.MustParsePrefix("10.1.2.3/24"))
	if k.Prefixlen != 96+24 || netip.AddrFrom16(k.Addr) != netip.MustParseAddr("::ffff:10.1.2.0") {
		t.Fatalf("IPv4 key %+v", k)
	}
	k = ipcacheKey(netip.MustParsePrefix("2001:db8::/32"))
	if k.Prefixlen != 32 || netip.AddrFrom16(k.Addr) != netip.MustParseAddr("2001:db8::") {
		t.Fatalf("IPv6 key %+v", k)
	}
}

func rawEvent(e nmbpf.WorkloadEvent) []byte {
	b, err := binary.Append(nil, binary.NativeEndian, e)
	if err != nil {
		panic(err)
	}
	return b
}

func sampleEvent() nmbpf.WorkloadEvent {
	return nmbpf.WorkloadEvent{
		Timestamp: 5e9, Type: 1, Reason: 2, Direction: 1, Family: 4, Proto: 6, Sport: 40000, Dport: 8080,
		Ifindex: 3, LocalIdentity: 1001, RemoteIdentity: 1002, Endpoint: 2, Cookie: 7,
		Saddr: netip.MustParseAddr("10.0.0.1").As16(), Daddr: netip.MustParseAddr("10.0.0.2").As16(),
	}
}

func TestDecodeEvent(t *testing.T) {
	e, err := DecodeEvent(rawEvent(sampleEvent()))
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != EventDrop || e.Reason != model.DropPolicy || e.Direction != model.Ingress || e.Source != netip.MustParseAddrPort("10.0.0.1:40000") ||
		e.Destination != netip.MustParseAddrPort("10.0.0.2:8080") || e.LocalIdentity != 1001 || e.RemoteIdentity != 1002 || e.Cookie != 7 {
		t.Fatalf("decoded %+v", e)
	}
	for name, mutate := range map[string]func(*nmbpf.WorkloadEvent){
		"type":      func(e *nmbpf.WorkloadEvent) { e.Type = 9 },
		"reason":    func(e *nmbpf.WorkloadEvent) { e.Reason = 200 },
		"direction": func(e *nmbpf.WorkloadEvent) { e.Direction = 0 },
		"family":    func(e *nmbpf.WorkloadEvent) { e.Family = 5 },
	} {
		raw := sampleEvent()
		mutate(&raw)
		if _, err := DecodeEvent(rawEvent(raw)); !errors.Is(err, ErrBadEvent) || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s: %v", name, err)
		}
	}
	if _, err := DecodeEvent(rawEvent(sampleEvent())[:10]); !errors.Is(err, ErrBadEvent) {
		t.Errorf("short record: %v", err)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(rawEvent(sampleEvent()))
	auth := sampleEvent()
	auth.Type, auth.Reason, auth.AuthType, auth.Family = 3, 4, 1, 6
	f.Add(rawEvent(auth))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			return
		}
		if !e.Source.Addr().IsValid() || e.Type.String() == "" || e.Reason.String() == "" {
			t.Fatalf("accepted event decodes to %+v", e)
		}
	})
}

func TestNames(t *testing.T) {
	for id, want := range map[model.Identity]string{0: "any", 1: "reserved:host", 2: "reserved:world", 8: "reserved:ingress", 1234: "1234"} {
		if got := id.String(); got != want {
			t.Errorf("Identity(%d) = %q, want %q", id, got, want)
		}
	}
	for r := model.Reason(0); r < numReasons; r++ {
		if r <= model.DropRouteIdentity && strings.HasPrefix(r.String(), "reason(") {
			t.Errorf("reason %d has no name", r)
		}
	}
	if !model.DropPolicy.IsDrop() || model.ReasonRedirected.IsDrop() {
		t.Error("IsDrop")
	}
}
