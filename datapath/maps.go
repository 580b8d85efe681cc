package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// ErrMapFull is returned when a desired state does not fit in its map.
// Nothing is written in that case.
var ErrMapFull = errors.New("BPF map full")

// addr16 is the kernel's address encoding: 16 bytes, IPv4 mapped.
func addr16(a netip.Addr) [16]uint8 { return a.Unmap().As16() }

func addrFrom16(b [16]uint8) netip.Addr { return netip.AddrFrom16(b).Unmap() }

func policyKeyOf(k model.PolicyKey) nmbpf.WorkloadPolicyKey {
	return nmbpf.WorkloadPolicyKey{
		Subject:   uint32(k.Subject),
		Remote:    uint32(k.Remote),
		Port:      k.Port,
		Proto:     k.Proto,
		Direction: uint8(k.Direction),
	}
}

func policyValueOf(e model.PolicyEntry) nmbpf.WorkloadPolicyValue {
	return nmbpf.WorkloadPolicyValue{
		Verdict:   uint8(e.Verdict),
		AuthType:  uint8(e.Auth),
		ProxyPort: e.ProxyPort,
		Cookie:    e.Cookie,
	}
}

func policyEntryFrom(k nmbpf.WorkloadPolicyKey, v nmbpf.WorkloadPolicyValue) model.PolicyEntry {
	return model.PolicyEntry{
		Subject:   model.Identity(k.Subject),
		Remote:    model.Identity(k.Remote),
		Direction: model.Direction(k.Direction),
		Proto:     k.Proto,
		Port:      k.Port,
		Verdict:   model.Verdict(v.Verdict),
		ProxyPort: v.ProxyPort,
		Auth:      model.AuthType(v.AuthType),
		Cookie:    v.Cookie,
	}
}

// readAll returns every entry of a hash-like map.
func readAll[K comparable, V any](m *ebpf.Map) (map[K]V, error) {
	out := map[K]V{}
	var k K
	var v V
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading map %s: %w", mapName(m), err)
	}
	return out, nil
}

func mapName(m *ebpf.Map) string {
	if info, err := m.Info(); err == nil {
		return info.Name
	}
	return m.String()
}

// syncMap makes m hold exactly want. Keys whose value already matches are
// not written. It checks capacity first, so a desired state that cannot
// fit fails before any write; when old and new together exceed the
// capacity, removals are done before additions.
func syncMap[K comparable, V comparable](m *ebpf.Map, what string, want map[K]V) error {
	cur, err := readAll[K, V](m)
	if err != nil {
		return err
	}
	if uint32(len(want)) > m.MaxEntries() {
		return fmt.Errorf("%w: %s needs %d entries, map %s holds %d", ErrMapFull, what, len(want), mapName(m), m.MaxEntries())
	}
	union := len(cur)
	for k := range want {
		if _, ok := cur[k]; !ok {
			union++
		}
	}
	deleteStale := func() error {
		for k := range cur {
			if _, keep := want[k]; keep {
				continue
			}
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("deleting %s entry %+v: %w", what, k, err)
			}
		}
		return nil
	}
	if uint32(union) > m.MaxEntries() {
		if err := deleteStale(); err != nil {
			return err
		}
	}
	for k, v := range want {
		if old, ok := cur[k]; ok && old == v {
			continue
		}
		if err := m.Put(k, v); err != nil {
			return fmt.Errorf("writing %s entry %+v: %w", what, k, mapWriteErr(err))
		}
	}
	return deleteStale()
}

// mapWriteErr turns the kernel's "no room" answers (E2BIG from hash maps,
// ENOSPC from LPM tries) into ErrMapFull.
func mapWriteErr(err error) error {
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%w: %w", ErrMapFull, err)
	}
	return err
}
