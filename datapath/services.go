package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// SyncServices makes the Service table (socket-level translation, see
// AttachCgroup) hold exactly these frontends and backends.
//
// Writes are ordered so that a connect running meanwhile never sees a
// frontend whose count points past its backends: new and changed backend
// slots first, then the frontends' counts, then removed frontends, then
// the backend slots no count reaches any more. A connect that races a
// shrinking frontend and finds its slot gone is refused, never passed on
// to the ClusterIP.
func (d *Datapath) SyncServices(svcs []model.Service) error {
	want := map[nmbpf.WorkloadSvcKey]nmbpf.WorkloadSvcValue{}
	for i, s := range svcs {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("services[%d]: %w", i, err)
		}
		fe := nmbpf.WorkloadSvcKey{Addr: addr16(s.Frontend), Port: s.Port, Proto: s.Proto}
		if _, dup := want[fe]; dup {
			return fmt.Errorf("services[%d]: %s:%d/%d listed twice", i, s.Frontend, s.Port, s.Proto)
		}
		want[fe] = nmbpf.WorkloadSvcValue{Count: uint16(len(s.Backends))}
		for j, b := range s.Backends {
			k := fe
			k.Slot = uint16(j + 1)
			want[k] = nmbpf.WorkloadSvcValue{Addr: addr16(b.Addr), Port: b.Port}
		}
	}
	d.tablesMu.Lock()
	defer d.tablesMu.Unlock()
	m := d.objs.NmServices
	cur, err := readAll[nmbpf.WorkloadSvcKey, nmbpf.WorkloadSvcValue](m)
	if err != nil {
		return err
	}
	union := len(cur)
	for k := range want {
		if _, ok := cur[k]; !ok {
			union++
		}
	}
	if uint32(union) > m.MaxEntries() {
		return fmt.Errorf("%w: services need %d slots while they change (%d after), map %s holds %d",
			ErrMapFull, union, len(want), mapName(m), m.MaxEntries())
	}
	put := func(frontends bool) error {
		for k, v := range want {
			if (k.Slot == 0) != frontends {
				continue
			}
			if old, ok := cur[k]; ok && old == v {
				continue
			}
			if err := m.Put(k, v); err != nil {
				return fmt.Errorf("writing service slot %+v: %w", k, mapWriteErr(err))
			}
		}
		return nil
	}
	del := func(frontends bool) error {
		for k := range cur {
			if _, keep := want[k]; keep || (k.Slot == 0) != frontends {
				continue
			}
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("deleting service slot %+v: %w", k, err)
			}
		}
		return nil
	}
	if err := put(false); err != nil {
		return err
	}
	if err := put(true); err != nil {
		return err
	}
	if err := del(true); err != nil {
		return err
	}
	return del(false)
}

// Services reads the Service table back, for inspection and tests.
func (d *Datapath) Services() ([]model.Service, error) {
	d.tablesMu.Lock()
	cur, err := readAll[nmbpf.WorkloadSvcKey, nmbpf.WorkloadSvcValue](d.objs.NmServices)
	d.tablesMu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []model.Service
	for k, v := range cur {
		if k.Slot != 0 {
			continue
		}
		s := model.Service{Frontend: addrFrom16(k.Addr), Port: k.Port, Proto: k.Proto}
		for i := 1; i <= int(v.Count); i++ {
			bk := k
			bk.Slot = uint16(i)
			if b, ok := cur[bk]; ok {
				s.Backends = append(s.Backends, model.Backend{Addr: addrFrom16(b.Addr), Port: b.Port})
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// SyncServiceRanges makes the Service ranges hold exactly these prefixes:
// the cluster's ServiceCIDRs and every ClusterIP. Under egress
// enforcement, from_workload drops a new flow to any address in them that
// socket-level translation left alone (an address no Service owns, a
// Service deleted since, a port or protocol no frontend has): the node's
// NAT may still send it to a Pod that no egress rule judged.
func (d *Datapath) SyncServiceRanges(ranges []netip.Prefix) error {
	want := make(map[nmbpf.WorkloadIpcacheKey]uint32, len(ranges))
	for i, p := range ranges {
		if err := model.ValidateRange(p); err != nil {
			return fmt.Errorf("service ranges[%d]: %w", i, err)
		}
		want[ipcacheKey(p)] = 1
	}
	d.tablesMu.Lock()
	defer d.tablesMu.Unlock()
	return syncMap(d.objs.NmSvcRanges, "service ranges", want)
}

// ServiceRanges reads the Service ranges back, for inspection and tests.
func (d *Datapath) ServiceRanges() ([]netip.Prefix, error) {
	d.tablesMu.Lock()
	cur, err := readAll[nmbpf.WorkloadIpcacheKey, uint32](d.objs.NmSvcRanges)
	d.tablesMu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(cur))
	for k := range cur {
		a := addrFrom16(k.Addr)
		bits := int(k.Prefixlen)
		if a.Is4() {
			bits -= 96
		}
		out = append(out, netip.PrefixFrom(a, bits))
	}
	return out, nil
}
