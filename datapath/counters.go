package datapath

import (
	"fmt"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// numReasons is REASON_MAX in common.h: the counter map has one slot per
// (reason, direction) below it.
const numReasons = 16

// CounterKey selects one counter: what happened, in which direction.
type CounterKey struct {
	Reason    model.Reason
	Direction model.Direction
}

// Counter is a packet and byte count, summed over CPUs.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// Counters returns every non-zero counter since the maps were created
// (they survive restarts with the pinned maps).
func (d *Datapath) Counters() (map[CounterKey]Counter, error) {
	out := map[CounterKey]Counter{}
	for slot := uint32(0); slot < numReasons*2; slot++ {
		var perCPU []nmbpf.WorkloadCounter
		if err := d.objs.NmCounters.Lookup(slot, &perCPU); err != nil {
			return nil, fmt.Errorf("reading counter slot %d: %w", slot, err)
		}
		var sum Counter
		for _, c := range perCPU {
			sum.Packets += c.Packets
			sum.Bytes += c.Bytes
		}
		if sum.Packets == 0 {
			continue
		}
		out[CounterKey{Reason: model.Reason(slot >> 1), Direction: model.Direction(slot&1 + 1)}] = sum
	}
	return out, nil
}

// LostEvents returns how many events the programs could not write because
// the ring buffer was full.
func (d *Datapath) LostEvents() (uint64, error) {
	var perCPU []uint64
	if err := d.objs.NmLost.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("reading lost event counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}
