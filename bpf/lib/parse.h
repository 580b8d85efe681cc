/* Packet parsing: Ethernet + IPv4/IPv6 (+ extension headers, fragments) +
 * TCP/UDP/SCTP/ICMP into a struct flow.
 *
 * Headers are read with bpf_skb_load_bytes so non-linear skbs (GSO, large
 * receive) parse the same as linear ones. Every read is bounds-checked by
 * the helper; a short packet yields DROP_INVALID, never a partial flow.
 */
#pragma once

#include "common.h"
#include "maps.h"

#define PARSE_NOT_IP 1 /* positive: not IPv4/IPv6, let it pass */

struct nm_ipv4 {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct nm_ipv6 {
	__u8 vtc_flow[4];
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

#define V4_MF 0x2000
#define V4_OFFSET 0x1FFF

#define V6_EXT_HOP 0
#define V6_EXT_ROUTING 43
#define V6_EXT_FRAG 44
#define V6_EXT_AH 51
#define V6_EXT_NONE 59
#define V6_EXT_DEST 60
#define V6_EXT_MAX 6

static __always_inline void map_v4(__u8 *dst, const __u8 *v4)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	dst[12] = v4[0];
	dst[13] = v4[1];
	dst[14] = v4[2];
	dst[15] = v4[3];
}

static __always_inline int is_icmp_error(__u8 proto, __u8 type)
{
	if (proto == NM_PROTO_ICMP)
		return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
	return type >= 1 && type <= 4; /* ICMPv6 errors */
}

/* Reads the ports (or ICMP echo id) of an L4 header at off into t. For
 * ICMP, *type receives the message type. Returns 0 or a drop reason. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct tuple *t,
				    __u8 *type, __u8 *tcp_flags)
{
	__u8 buf[14];

	switch (t->proto) {
	case NM_PROTO_TCP:
		if (bpf_skb_load_bytes(skb, off, buf, 14) < 0)
			return -DROP_INVALID;
		t->sport = ((__u16)buf[0] << 8) | buf[1];
		t->dport = ((__u16)buf[2] << 8) | buf[3];
		*tcp_flags = buf[13];
		return 0;
	case NM_PROTO_UDP:
	case NM_PROTO_SCTP:
		if (bpf_skb_load_bytes(skb, off, buf, 4) < 0)
			return -DROP_INVALID;
		t->sport = ((__u16)buf[0] << 8) | buf[1];
		t->dport = ((__u16)buf[2] << 8) | buf[3];
		return 0;
	case NM_PROTO_ICMP:
	case NM_PROTO_ICMPV6:
		if (bpf_skb_load_bytes(skb, off, buf, 8) < 0)
			return -DROP_INVALID;
		*type = buf[0];
		/* Echo request/reply (v4 8/0, v6 128/129) are tracked by id in
		 * both port slots so the reply's reversed tuple matches. */
		if ((t->proto == NM_PROTO_ICMP && (buf[0] == 8 || buf[0] == 0)) ||
		    (t->proto == NM_PROTO_ICMPV6 && (buf[0] == 128 || buf[0] == 129))) {
			t->sport = ((__u16)buf[4] << 8) | buf[5];
			t->dport = t->sport;
		}
		return 0;
	}
	return 0;
}

/* Parses the packet an ICMP error quotes, starting at off. Only its
 * addresses and ports matter: they name the flow the error belongs to. */
static __always_inline int parse_inner(struct __sk_buff *skb, __u32 off, __u8 family,
				       struct tuple *t)
{
	__u8 type = 0, flags = 0;

	if (family == 4) {
		struct nm_ipv4 ip;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
			return -DROP_INVALID;
		if ((ip.ver_ihl >> 4) != 4 || (ip.ver_ihl & 0xF) < 5)
			return -DROP_INVALID;
		map_v4(t->saddr, ip.saddr);
		map_v4(t->daddr, ip.daddr);
		t->proto = ip.protocol;
		off += (ip.ver_ihl & 0xF) * 4;
	} else {
		struct nm_ipv6 ip6;

		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
			return -DROP_INVALID;
		__builtin_memcpy(t->saddr, ip6.saddr, 16);
		__builtin_memcpy(t->daddr, ip6.daddr, 16);
		t->proto = ip6.nexthdr;
		off += sizeof(ip6);
	}
	return parse_l4(skb, off, t, &type, &flags);
}

/* Fills in the ports of a fragment. First fragments record their ports,
 * later ones look them up. */
static __always_inline int frag_ports(struct __sk_buff *skb, struct flow *f, __u32 id,
				      int first, int more)
{
	struct frag_key k = {};
	struct frag_ports *p, v;

	__builtin_memcpy(k.saddr, f->t.saddr, 16);
	__builtin_memcpy(k.daddr, f->t.daddr, 16);
	k.id = id;
	k.proto = f->t.proto;
	if (first) {
		if (more) {
			v.sport = f->t.sport;
			v.dport = f->t.dport;
			bpf_map_update_elem(&nm_frag, &k, &v, BPF_ANY);
		}
		return 0;
	}
	p = bpf_map_lookup_elem(&nm_frag, &k);
	if (!p)
		return -DROP_FRAG_UNKNOWN;
	f->t.sport = p->sport;
	f->t.dport = p->dport;
	f->policy_port = p->dport;
	if (!more)
		bpf_map_delete_elem(&nm_frag, &k);
	return 0;
}

static __always_inline int parse_tail(struct __sk_buff *skb, __u32 off, struct flow *f)
{
	__u8 type = 0;
	int ret;

	ret = parse_l4(skb, off, &f->t, &type, &f->tcp_flags);
	if (ret < 0)
		return ret;
	f->policy_port = f->t.dport;
	if (f->t.proto == NM_PROTO_ICMP || f->t.proto == NM_PROTO_ICMPV6) {
		f->policy_port = type;
		if (is_icmp_error(f->t.proto, type)) {
			if (parse_inner(skb, off + 8, f->family, &f->inner) == 0)
				f->related = 1;
		}
	}
	return 0;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	struct nm_ipv4 ip;
	__u32 ihl, off;
	__u16 frag;
	int ret;

	if (bpf_skb_load_bytes(skb, NM_ETH_HLEN, &ip, sizeof(ip)) < 0)
		return -DROP_INVALID;
	ihl = ip.ver_ihl & 0xF;
	if ((ip.ver_ihl >> 4) != 4 || ihl < 5)
		return -DROP_INVALID;
	f->family = 4;
	map_v4(f->t.saddr, ip.saddr);
	map_v4(f->t.daddr, ip.daddr);
	f->t.proto = ip.protocol;
	off = NM_ETH_HLEN + ihl * 4;
	frag = bpf_ntohs(ip.frag_off);
	if (frag & (V4_MF | V4_OFFSET)) {
		int first = (frag & V4_OFFSET) == 0;

		if (first) {
			ret = parse_tail(skb, off, f);
			if (ret < 0)
				return ret;
		}
		return frag_ports(skb, f, bpf_ntohs(ip.id), first, frag & V4_MF);
	}
	return parse_tail(skb, off, f);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct flow *f)
{
	struct nm_ipv6 ip6;
	__u32 off = NM_ETH_HLEN + sizeof(struct nm_ipv6);
	__u8 next;
	int frag = 0, first = 1, more = 0, ret;
	__u32 frag_id = 0;

	if (bpf_skb_load_bytes(skb, NM_ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return -DROP_INVALID;
	if ((ip6.vtc_flow[0] >> 4) != 6)
		return -DROP_INVALID;
	f->family = 6;
	__builtin_memcpy(f->t.saddr, ip6.saddr, 16);
	__builtin_memcpy(f->t.daddr, ip6.daddr, 16);
	next = ip6.nexthdr;

#pragma unroll
	for (int i = 0; i < V6_EXT_MAX; i++) {
		__u8 hdr[8];

		if (next != V6_EXT_HOP && next != V6_EXT_ROUTING && next != V6_EXT_FRAG &&
		    next != V6_EXT_AH && next != V6_EXT_DEST)
			break;
		if (bpf_skb_load_bytes(skb, off, hdr, 8) < 0)
			return -DROP_INVALID;
		if (next == V6_EXT_FRAG) {
			__u16 fo = ((__u16)hdr[2] << 8) | hdr[3];

			frag = 1;
			first = (fo & 0xFFF8) == 0;
			more = fo & 1;
			frag_id = ((__u32)hdr[4] << 24) | ((__u32)hdr[5] << 16) |
				  ((__u32)hdr[6] << 8) | hdr[7];
			off += 8;
		} else if (next == V6_EXT_AH) {
			off += ((__u32)hdr[1] + 2) * 4;
		} else {
			off += ((__u32)hdr[1] + 1) * 8;
		}
		next = hdr[0];
	}
	if (next == V6_EXT_HOP || next == V6_EXT_ROUTING || next == V6_EXT_FRAG ||
	    next == V6_EXT_AH || next == V6_EXT_DEST)
		return -DROP_INVALID; /* more extension headers than we follow */
	f->t.proto = next;
	if (frag) {
		if (first && next != V6_EXT_NONE) {
			ret = parse_tail(skb, off, f);
			if (ret < 0)
				return ret;
		}
		return frag_ports(skb, f, frag_id, first, more);
	}
	if (next == V6_EXT_NONE)
		return 0;
	return parse_tail(skb, off, f);
}

/* Returns 0 for a parsed IP packet, PARSE_NOT_IP for anything else, or a
 * negative drop reason. */
static __always_inline int parse_flow(struct __sk_buff *skb, struct flow *f)
{
	__u16 eth_proto;

	__builtin_memset(f, 0, sizeof(*f));
	f->len = skb->len;
	if (bpf_skb_load_bytes(skb, 12, &eth_proto, 2) < 0)
		return -DROP_INVALID;
	if (eth_proto == bpf_htons(NM_ETH_P_IP))
		return parse_ipv4(skb, f);
	if (eth_proto == bpf_htons(NM_ETH_P_IPV6))
		return parse_ipv6(skb, f);
	return PARSE_NOT_IP;
}

/* Neighbour discovery and multicast listener messages keep the link itself
 * working; policy never applies to them. */
static __always_inline int is_link_control(const struct flow *f)
{
	if (f->family != 6 || f->t.proto != NM_PROTO_ICMPV6)
		return 0;
	switch (f->policy_port) {
	case 130: case 131: case 132: /* MLD */
	case 133: case 134: case 135: case 136: case 137: /* NDP */
	case 143: /* MLDv2 */
		return 1;
	}
	return 0;
}
