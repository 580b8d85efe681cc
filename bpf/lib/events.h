/* Counters and ring buffer events. */
#pragma once

#include "common.h"
#include "maps.h"

static __always_inline void count(__u8 reason, __u8 dir, __u32 len)
{
	__u32 slot = ((__u32)reason << 1) | ((dir - 1) & 1);
	struct counter *c;

	if (slot >= COUNTER_SLOTS)
		return;
	c = bpf_map_lookup_elem(&nm_counters, &slot);
	if (!c)
		return;
	c->packets++;
	c->bytes += len;
}

/* What the verdict was and on whose behalf: filled in by the policy code,
 * reported by emit(). */
struct decision {
	__u8 verdict;
	__u8 reason;
	__u8 direction;
	__u8 auth_type;
	__u16 proxy_port;
	__u16 endpoint;
	__u32 local_identity;
	__u32 remote_identity;
	__u16 remote_node;
	__u16 pad;
	__u32 cookie;
};

/* Kept out of line on purpose: its prototype is what puts struct event
 * into the object's BTF, from which the Go decoder type is generated. */
static __attribute__((noinline)) void event_fill(struct event *e, const struct flow *f,
						 const struct decision *d, __u32 type, __u32 ifindex)
{
	e->timestamp = now_ns();
	e->type = type;
	e->reason = d->reason;
	e->direction = d->direction;
	e->family = f->family;
	e->proto = f->t.proto;
	e->auth_type = d->auth_type;
	e->proxy_port = d->proxy_port;
	e->sport = f->t.sport;
	e->dport = f->policy_port;
	e->ifindex = ifindex;
	e->local_identity = d->local_identity;
	e->remote_identity = d->remote_identity;
	e->remote_node = d->remote_node;
	e->endpoint = d->endpoint;
	e->cookie = d->cookie;
	__builtin_memcpy(e->saddr, f->t.saddr, 16);
	__builtin_memcpy(e->daddr, f->t.daddr, 16);
}

static __always_inline void emit(struct __sk_buff *skb, const struct flow *f, const struct decision *d,
				 __u8 type)
{
	struct event *e = bpf_ringbuf_reserve(&nm_events, sizeof(*e), 0);

	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&nm_lost, &zero);

		if (lost)
			(*lost)++;
		return;
	}
	/* The empty asm hides that ctx is skb, so clang reads the field
	 * relative to the context register here instead of keeping a
	 * computed &skb->ifindex in a register across the function, which
	 * the verifier refuses (a modified context pointer). */
	struct __sk_buff *ctx = skb;
	asm volatile("" : "+r"(ctx));
	event_fill(e, f, d, type, ctx->ifindex);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int drop(struct __sk_buff *skb, const struct flow *f, struct decision *d,
				__u8 reason)
{
	d->reason = reason;
	count(reason, d->direction, f->len);
	emit(skb, f, d, reason == DROP_AUTH_REQUIRED ? EVENT_AUTH_REQUIRED : EVENT_DROP);
	return NM_TC_SHOT;
}
