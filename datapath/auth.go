package datapath

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

func rawAuthKey(k model.AuthKey) nmbpf.WorkloadAuthKey {
	return nmbpf.WorkloadAuthKey{Local: uint32(k.Local), Remote: uint32(k.Remote), RemoteNode: k.RemoteNode, AuthType: uint8(k.Type)}
}

// bootNow reads CLOCK_BOOTTIME, the clock the programs compare expiries
// with.
func bootNow() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("reading boot time clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// expiryValue converts a wall-clock expiry into the kernel's boot-time
// nanoseconds. The conversion happens at write time, so a later wall-clock
// step does not move the expiry: it stays "this long from now".
func expiryValue(expiry time.Time) (nmbpf.WorkloadAuthValue, error) {
	now, err := bootNow()
	if err != nil {
		return nmbpf.WorkloadAuthValue{}, err
	}
	left := time.Until(expiry)
	if left < 0 {
		left = 0
	}
	return nmbpf.WorkloadAuthValue{Expiry: uint64(now + left)}, nil
}

// UpsertAuth records that the relation is authenticated until expiry.
func (d *Datapath) UpsertAuth(k model.AuthKey, expiry time.Time) error {
	if k.Type == model.AuthNone {
		return fmt.Errorf("auth entry %+v: type: must not be none", k)
	}
	v, err := expiryValue(expiry)
	if err != nil {
		return err
	}
	d.tablesMu.Lock()
	defer d.tablesMu.Unlock()
	if err := d.objs.NmAuth.Put(rawAuthKey(k), v); err != nil {
		return fmt.Errorf("writing auth entry %+v: %w", k, mapWriteErr(err))
	}
	return nil
}

// DeleteAuth forgets a relation; deleting a missing one is not an error.
func (d *Datapath) DeleteAuth(k model.AuthKey) error {
	d.tablesMu.Lock()
	defer d.tablesMu.Unlock()
	if err := d.objs.NmAuth.Delete(rawAuthKey(k)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("deleting auth entry %+v: %w", k, err)
	}
	return nil
}

// SyncAuth makes the auth table hold exactly these relations (the
// garbage-collection path of the auth manager).
func (d *Datapath) SyncAuth(entries map[model.AuthKey]time.Time) error {
	want := make(map[nmbpf.WorkloadAuthKey]nmbpf.WorkloadAuthValue, len(entries))
	for k, exp := range entries {
		if k.Type == model.AuthNone {
			return fmt.Errorf("auth entry %+v: type: must not be none", k)
		}
		v, err := expiryValue(exp)
		if err != nil {
			return err
		}
		want[rawAuthKey(k)] = v
	}
	d.tablesMu.Lock()
	defer d.tablesMu.Unlock()
	return syncMap(d.objs.NmAuth, "auth", want)
}

// ListAuth returns every relation in the auth table with its expiry on the
// wall clock (converted back from boot time as of now), expired ones
// included: the auth manager's garbage collection decides about those.
func (d *Datapath) ListAuth() (map[model.AuthKey]time.Time, error) {
	d.tablesMu.Lock()
	raw, err := readAll[nmbpf.WorkloadAuthKey, nmbpf.WorkloadAuthValue](d.objs.NmAuth)
	d.tablesMu.Unlock()
	if err != nil {
		return nil, err
	}
	boot, err := bootNow()
	if err != nil {
		return nil, err
	}
	wall := time.Now()
	out := make(map[model.AuthKey]time.Time, len(raw))
	for k, v := range raw {
		key := model.AuthKey{Local: model.Identity(k.Local), Remote: model.Identity(k.Remote), RemoteNode: k.RemoteNode, Type: model.AuthType(k.AuthType)}
		out[key] = wall.Add(time.Duration(v.Expiry) - boot)
	}
	return out, nil
}
