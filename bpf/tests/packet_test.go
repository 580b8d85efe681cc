package tests

import (
	"encoding/binary"
	"net/netip"
)

// pkt describes a crafted frame: Ethernet + IPv4/IPv6 + one L4 header.
type pkt struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
	tcpFlags     uint8 // TCP only; zero means SYN
	icmpType     uint8 // ICMP/ICMPv6 only
	icmpID       uint16
	inner        []byte // ICMP error: quoted packet (IP header onward)
	payload      []byte
	// Fragmentation (IPv4 flags/offset, or an IPv6 fragment header).
	fragID     uint32
	fragOffset uint16 // in 8-byte units
	moreFrags  bool
	// v6Ext inserts this many hop-by-hop option headers.
	v6Ext int
}

const (
	synFlag = 0x02
	ackFlag = 0x10
	rstFlag = 0x04
	finFlag = 0x01
)

func (p pkt) l4() []byte {
	switch p.proto {
	case 6:
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:], p.sport)
		binary.BigEndian.PutUint16(b[2:], p.dport)
		b[12] = 5 << 4
		b[13] = p.tcpFlags
		if b[13] == 0 {
			b[13] = synFlag
		}
		binary.BigEndian.PutUint16(b[14:], 65535)
		return append(b, p.payload...)
	case 17, 132:
		b := make([]byte, 8)
		binary.BigEndian.PutUint16(b[0:], p.sport)
		binary.BigEndian.PutUint16(b[2:], p.dport)
		binary.BigEndian.PutUint16(b[4:], uint16(8+len(p.payload)))
		return append(b, p.payload...)
	case 1, 58:
		b := make([]byte, 8)
		b[0] = p.icmpType
		binary.BigEndian.PutUint16(b[4:], p.icmpID)
		b = append(b, p.inner...)
		return append(b, p.payload...)
	}
	return append([]byte(nil), p.payload...)
}

func (p pkt) frame() []byte {
	eth := make([]byte, 14)
	copy(eth[0:6], []byte{0x02, 0, 0, 0, 0, 1})
	copy(eth[6:12], []byte{0x02, 0, 0, 0, 0, 2})
	l4 := p.l4()
	if p.fragOffset != 0 {
		l4 = append([]byte(nil), p.payload...) // later fragments carry no L4 header
	}
	if p.src.Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(ip[4:], uint16(p.fragID))
		frag := p.fragOffset
		if p.moreFrags {
			frag |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:], frag)
		ip[8] = 64
		ip[9] = p.proto
		s, d := p.src.As4(), p.dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], csum(ip))
		return append(append(eth, ip...), l4...)
	}
	binary.BigEndian.PutUint16(eth[12:], 0x86DD)
	var ext []byte
	next := p.proto
	if p.fragID != 0 || p.fragOffset != 0 || p.moreFrags {
		fh := make([]byte, 8)
		fh[0] = next
		fo := p.fragOffset << 3
		if p.moreFrags {
			fo |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], p.fragID)
		ext = append(fh, ext...)
		next = 44
	}
	for i := 0; i < p.v6Ext; i++ {
		hbh := make([]byte, 8)
		hbh[0] = next
		hbh[2] = 1 // PadN
		hbh[3] = 4
		ext = append(hbh, ext...)
		next = 0
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+len(l4)))
	ip[6] = next
	ip[7] = 64
	s, d := p.src.As16(), p.dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(append(append(eth, ip...), ext...), l4...)
}

// ipPacket is frame() without the Ethernet header, for quoting in ICMP
// errors.
func (p pkt) ipPacket() []byte { return p.frame()[14:] }

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func (p pkt) reply() pkt {
	r := p
	r.src, r.dst = p.dst, p.src
	r.sport, r.dport = p.dport, p.sport
	if p.proto == 6 {
		r.tcpFlags = synFlag | ackFlag
	}
	if p.proto == 1 && p.icmpType == 8 {
		r.icmpType = 0
	}
	if p.proto == 58 && p.icmpType == 128 {
		r.icmpType = 129
	}
	return r
}
