package accesslog

import (
	"unsafe"

	"github.com/nodemesh/nodemesh/mesh/flow"
)

// arenaBytes is the size of a block of strings; a flow whose strings take
// more than a quarter of it gets an allocation of its own, so a block is
// never mostly wasted.
const arenaBytes = 4 << 10

// arena hands out the bytes of a stream's flows' strings from blocks
// shared by consecutive flows, so that a message of 64 entries costs a
// few allocations for its strings instead of one per entry. What it
// handed out it never touches again: a block's used part belongs to the
// flows, which other goroutines read once the sink has them, and the
// stream goroutine only writes its unused rest.
//
// Only bytes are shared: a block holds no pointers, so a flow kept in
// the store keeps at most one block (4 KiB) beyond its own memory alive,
// whatever the flows it shared the block with pointed to. Blocks of
// flows' HTTP parts were tried and dropped: a part holds the flow's
// strings and header lists, so one stored flow kept the strings of the
// 31 others of its block (up to 16 KiB each) alive.
type arena struct {
	buf []byte // the current block's unused bytes (len 0, cap the rest)
}

// bytes returns an empty slice with room for n bytes, which the caller
// fills and keeps.
func (a *arena) bytes(n int) []byte {
	if n > arenaBytes/4 {
		return make([]byte, 0, n)
	}
	if cap(a.buf) < n {
		a.buf = make([]byte, 0, arenaBytes)
	}
	b := a.buf[:0:n]
	a.buf = a.buf[n:n:cap(a.buf)]
	return b
}

// own copies every string of f taken from the message into memory of
// the arena, so the flow keeps nothing of the message's buffer (which
// gRPC reuses).
func (a *arena) own(f *flow.Flow) {
	var ptrs [16]*string
	ps := ptrs[:0]
	ps = append(ps, &f.Protocol, &f.Verdict, &f.Policy, &f.Reason)
	if h := f.HTTP; h != nil {
		ps = append(ps, &h.Authority, &h.Path)
		for i := range h.MissingHeaders {
			ps = append(ps, &h.MissingHeaders[i])
		}
		for i := range h.RejectedHeaders {
			ps = append(ps, &h.RejectedHeaders[i])
		}
	}
	if g := f.GRPC; g != nil {
		ps = append(ps, &g.Service, &g.Method)
	}
	if k := f.Kafka; k != nil {
		ps = append(ps, &k.APIKeyName, &k.ClientID, &k.ErrorName)
		for i := range k.Topics {
			ps = append(ps, &k.Topics[i])
		}
	}
	n := 0
	for _, p := range ps {
		n += len(*p)
	}
	if n == 0 {
		return
	}
	buf := a.bytes(n)
	for _, p := range ps {
		buf = append(buf, *p...)
	}
	all := unsafe.String(unsafe.SliceData(buf), len(buf))
	for _, p := range ps {
		m := len(*p)
		*p, all = all[:m], all[m:]
	}
}
