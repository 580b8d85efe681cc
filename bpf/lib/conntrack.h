/* Connection tracking: one entry per flow, keyed by the tuple of the packet
 * that opened it. A packet matching the key is "established"; one matching
 * the reversed key is a reply; an ICMP error quoting a tracked flow is
 * "related". Replies and related packets always pass: policy describes who
 * may open a connection, not who may answer. */
#pragma once

#include "common.h"
#include "maps.h"

#define CT_NEW 0
#define CT_ESTABLISHED 1
#define CT_REPLY 2
#define CT_RELATED 3

static __always_inline int ct_alive(const struct ct_entry *e, __u64 now)
{
	return e && e->lifetime > now;
}

static __always_inline __u64 ct_lifetime(const struct ct_entry *e, __u8 proto)
{
	if (proto != NM_PROTO_TCP)
		return CT_LIFETIME_NONTCP;
	if (e->flags & CT_F_RST)
		return CT_LIFETIME_CLOSE;
	if ((e->flags & (CT_F_FIN_FWD | CT_F_FIN_REV)) == (CT_F_FIN_FWD | CT_F_FIN_REV))
		return CT_LIFETIME_CLOSE;
	if (!(e->flags & CT_F_SEEN_REPLY))
		return CT_LIFETIME_SYN;
	return CT_LIFETIME_TCP;
}

static __always_inline void ct_touch(struct ct_entry *e, const struct flow *f, int reply, __u64 now)
{
	__u8 flags = e->flags;

	if (reply)
		flags |= CT_F_SEEN_REPLY;
	if (f->tcp_flags & TCP_RST)
		flags |= CT_F_RST;
	if (f->tcp_flags & TCP_FIN)
		flags |= reply ? CT_F_FIN_REV : CT_F_FIN_FWD;
	if (flags != e->flags)
		e->flags = flags;
	e->lifetime = now + ct_lifetime(e, f->t.proto) * NSEC_PER_SEC;
}

/* A bare SYN on a flow that is closing starts a new connection with the
 * same tuple: it must be judged by policy again. */
static __always_inline int ct_reopened(const struct ct_entry *e, const struct flow *f)
{
	return f->t.proto == NM_PROTO_TCP && (f->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN &&
	       (e->flags & (CT_F_RST | CT_F_FIN_FWD | CT_F_FIN_REV));
}

static __always_inline int ct_lookup(struct flow *f, struct ct_entry **out, __u64 now)
{
	struct ct_entry *e;
	struct tuple rev;

	*out = 0;
	if (f->related) {
		tuple_reverse(&f->inner, &rev);
		if (ct_alive(bpf_map_lookup_elem(&nm_ct, &f->inner), now) ||
		    ct_alive(bpf_map_lookup_elem(&nm_ct, &rev), now))
			return CT_RELATED;
		return CT_NEW;
	}
	e = bpf_map_lookup_elem(&nm_ct, &f->t);
	if (ct_alive(e, now)) {
		if (ct_reopened(e, f))
			return CT_NEW;
		ct_touch(e, f, 0, now);
		*out = e;
		return CT_ESTABLISHED;
	}
	tuple_reverse(&f->t, &rev);
	e = bpf_map_lookup_elem(&nm_ct, &rev);
	if (ct_alive(e, now)) {
		ct_touch(e, f, 1, now);
		*out = e;
		return CT_REPLY;
	}
	return CT_NEW;
}

static __always_inline int ct_create(const struct flow *f, __u8 flags, __u16 proxy_port,
				     __u32 src_identity, __u8 dir, __u64 now)
{
	struct ct_entry e = {
		.src_identity = src_identity,
		.proxy_port = proxy_port,
		.flags = flags,
		.direction = dir,
	};

	ct_touch(&e, f, 0, now);
	return bpf_map_update_elem(&nm_ct, &f->t, &e, BPF_ANY);
}
