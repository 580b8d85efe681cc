package upstream

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
)

// UDPConn is a udp_proxy session's connected socket to one endpoint. It
// holds one of the cluster's connection slots until closed.
type UDPConn struct {
	*net.UDPConn
	b    *Breaker
	p    *Pool
	done atomic.Bool
}

// Close closes the socket and frees its slot (once).
func (c *UDPConn) Close() error {
	err := c.UDPConn.Close()
	if c.done.CompareAndSwap(false, true) {
		c.p.open.Add(-1)
		c.b.conns.Add(-1)
	}
	return err
}

// DialUDP opens a connected UDP socket to h with the cluster's socket
// options (upstream_bind_config) for a udp_proxy session. Sessions count
// against max_connections strictly, as Envoy's udp_proxy counts them: at
// the limit DialUDP fails with ErrOverflow and the datagram is dropped
// (there is no pool-without-connections exception, which only exists so
// HTTP requests of one endpoint are not starved by another's idle
// connections).
func (c *Cluster) DialUDP(ctx context.Context, h *Host) (*UDPConn, error) {
	p := h.Pool
	b := p.b
	if b.conns.Add(1) > b.maxConns.Load() {
		b.conns.Add(-1)
		b.cxOverflow.Add(1)
		return nil, ErrOverflow
	}
	p.open.Add(1)
	release := func() {
		p.open.Add(-1)
		b.conns.Add(-1)
	}
	o := p.opts
	d := net.Dialer{}
	if o.bind != nil && o.bind.Source.IsValid() {
		d.LocalAddr = &net.UDPAddr{IP: o.bind.Source.Addr().AsSlice(), Port: int(o.bind.Source.Port())}
	}
	if o.bind != nil || o.mark != nil {
		d.Control = func(network, address string, rc syscall.RawConn) error { return o.apply(rc, false) }
	}
	nc, err := d.DialContext(ctx, "udp", h.Addr)
	if err != nil {
		release()
		return nil, err
	}
	uc, ok := nc.(*net.UDPConn)
	if !ok {
		nc.Close()
		release()
		return nil, fmt.Errorf("dialing UDP endpoint %s: not a UDP socket", h.Addr)
	}
	return &UDPConn{UDPConn: uc, b: b, p: p}, nil
}
