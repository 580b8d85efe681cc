package tests

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// FuzzPrograms feeds arbitrary frames to every program: the kernel must
// run them without error and they must answer with a verdict they are
// allowed to give, whatever the bytes.
func FuzzPrograms(f *testing.F) {
	for _, fam := range families {
		f.Add(tcp(fam.a, fam.remote, 80).frame(), uint32(0))
		f.Add(udp(fam.a, fam.b, 53).frame(), uint32(0))
		f.Add(pkt{src: fam.remote, dst: fam.a, proto: fam.icmp, icmpType: fam.unreachable, inner: tcp(fam.a, fam.remote, 80).ipPacket()}.frame(), uint32(0))
		frag := tcp(fam.a, fam.remote, 80)
		frag.fragID, frag.fragOffset = 5, 3
		f.Add(frag.frame(), uint32(0))
		ext := tcp(fam.a, fam.remote, 80)
		ext.v6Ext = 3
		f.Add(ext.frame(), uint32(0x0200|proxyPort<<16))
		f.Add(tcp(fam.host, fam.a, 80).frame(), uint32(0x00010A00))
	}
	h := newHarness(f)
	h.endpoint(families[0].a, 1, idA, h.loIndex)
	h.endpoint(families[1].a, 1, idA, h.loIndex)
	h.policy(model.Policy{
		Enforce: map[model.Identity]model.Enforcement{idA: model.EnforceIngress | model.EnforceEgress},
		Entries: []model.PolicyEntry{row(model.IdentityAny, model.Egress, 6, 80, model.Redirect), row(model.IdentityAny, model.Ingress, 0, 0, model.Allow)},
	})
	h.ipcache(netip.MustParsePrefix("0.0.0.0/0"), idRemote, 1)
	f.Fuzz(func(t *testing.T, frame []byte, mark uint32) {
		if len(frame) < 14 || len(frame) > 1500 {
			return
		}
		for _, prog := range []*ebpf.Program{h.objs.FromWorkload, h.objs.ToWorkload, h.netdev.FromNetdev} {
			var ret uint32
			err := h.ns.Do(func() error {
				var err error
				ret, err = prog.Run(&ebpf.RunOptions{Data: frame, Context: skbCtx(mark, h.loIndex)})
				return err
			})
			if errors.Is(err, unix.EINVAL) {
				// BPF_PROG_RUN rejects frames it cannot build an skb
				// from (for example an IP ethertype with a short header);
				// the program never saw them.
				continue
			}
			if err != nil {
				t.Fatalf("running program: %v", err)
			}
			if ret != tcOK && ret != tcShot && ret != tcRedirect {
				t.Fatalf("program returned %d for %x", ret, frame)
			}
		}
		h.drainEvents()
	})
}
