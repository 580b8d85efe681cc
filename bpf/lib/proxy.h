/* Delivery to the node proxy's transparent sockets (eBPF TPROXY).
 *
 * A packet of a redirected flow is given to a socket of the proxy with
 * bpf_sk_assign, without rewriting a byte of it: the accepted socket's local
 * address is the original destination. The socket is, in order:
 *   1. the connection the proxy already has for this 4-tuple (every packet
 *      after the SYN), or
 *   2. a listener on the proxy port, bound to the original destination's
 *      family wildcard or to loopback. With SO_REUSEPORT listeners the
 *      kernel then picks one socket of the group by flow hash, so every
 *      core's accept loop gets its share (Linux >= 6.5).
 * The TO_PROXY mark makes policy routing deliver the packet locally instead
 * of forwarding it to the original destination.
 *
 * bpf_sk_assign only works on tc ingress. On egress the packet is sent back
 * to this interface's ingress with the proxy port in the mark (hairpin), and
 * the ingress program finishes the job.
 */
#pragma once

#include "common.h"
#include "events.h"

static __always_inline __u32 fill_sock_tuple(const struct flow *f, struct bpf_sock_tuple *st,
					      __u16 dport)
{
	if (f->family == 4) {
		__builtin_memcpy(&st->ipv4.saddr, &f->t.saddr[12], 4);
		__builtin_memcpy(&st->ipv4.daddr, &f->t.daddr[12], 4);
		st->ipv4.sport = bpf_htons(f->t.sport);
		st->ipv4.dport = bpf_htons(dport);
		return sizeof(st->ipv4);
	}
	__builtin_memcpy(st->ipv6.saddr, f->t.saddr, 16);
	__builtin_memcpy(st->ipv6.daddr, f->t.daddr, 16);
	st->ipv6.sport = bpf_htons(f->t.sport);
	st->ipv6.dport = bpf_htons(dport);
	return sizeof(st->ipv6);
}

static __always_inline void set_loopback(const struct flow *f, struct bpf_sock_tuple *st)
{
	if (f->family == 4) {
		st->ipv4.daddr = bpf_htonl(0x7f000001);
		return;
	}
	__builtin_memset(st->ipv6.daddr, 0, 16);
	((__u8 *)st->ipv6.daddr)[15] = 1;
}

/* Finds the proxy's existing connection for this packet. Returns a
 * referenced socket that is not a listener, or NULL. */
static __always_inline struct bpf_sock *proxy_established(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_sock_tuple st = {};
	__u32 sz = fill_sock_tuple(f, &st, f->t.dport);
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &st, sz, BPF_F_CURRENT_NETNS, 0);

	if (!sk)
		return 0;
	/* A listener is not a connection; a TIME_WAIT socket must not swallow
	 * the SYN of a new connection that reuses the tuple. */
	if (sk->state == BPF_TCP_LISTEN ||
	    (sk->state == BPF_TCP_TIME_WAIT && (f->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)) {
		bpf_sk_release(sk);
		return 0;
	}
	return sk;
}

static __always_inline int proxy_deliver(struct __sk_buff *skb, const struct flow *f,
					 struct decision *d, __u16 port, int new_flow)
{
	struct bpf_sock_tuple st = {};
	struct bpf_sock *sk;
	__u32 sz;
	long ret;

	if (f->t.proto != NM_PROTO_TCP)
		return drop(skb, f, d, DROP_PROXY_UNSUPPORTED);
	sk = proxy_established(skb, f);
	if (sk)
		goto assign;
	sz = fill_sock_tuple(f, &st, port);
	sk = bpf_skc_lookup_tcp(skb, &st, sz, BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		set_loopback(f, &st);
		sk = bpf_skc_lookup_tcp(skb, &st, sz, BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk) {
		d->proxy_port = port;
		return drop(skb, f, d, DROP_PROXY_UNAVAILABLE);
	}
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		d->proxy_port = port;
		return drop(skb, f, d, DROP_PROXY_UNAVAILABLE);
	}
assign:
	ret = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (ret) {
		d->proxy_port = port;
		return drop(skb, f, d, DROP_PROXY_ASSIGN);
	}
	skb->mark = MARK_MAGIC_TO_PROXY;
	d->reason = REASON_REDIRECTED;
	d->proxy_port = port;
	count(REASON_REDIRECTED, d->direction, f->len);
	if (new_flow)
		emit(skb, f, d, EVENT_REDIRECT);
	return NM_TC_OK;
}

/* Used on egress: loop the packet to this interface's ingress, where
 * from_workload sees the mark and calls proxy_deliver. */
static __always_inline int proxy_hairpin(struct __sk_buff *skb, __u16 port)
{
	skb->mark = MARK_MAGIC_TO_PROXY | ((__u32)port << 16);
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

/* Used on egress for a reply to a proxy socket bound to a non-local
 * (original source) address: a proxy listener answering another proxy
 * listener's upstream connection. The stack routes it to the workload
 * owning the address; loop it to this interface's ingress, where
 * from_workload gives it to the socket (proxy_return). */
static __always_inline int proxy_reply_hairpin(struct __sk_buff *skb)
{
	skb->mark = MARK_MAGIC_PROXY_REPLY;
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

/* Second half of proxy_reply_hairpin: the packet must reach the proxy's
 * socket for its 4-tuple. Without one it is dropped: it carries another
 * endpoint's source address and must not go anywhere else. */
static __always_inline int proxy_return(struct __sk_buff *skb, const struct flow *f,
					struct decision *d)
{
	struct bpf_sock *sk;
	long ret;

	if (f->t.proto != NM_PROTO_TCP)
		return drop(skb, f, d, DROP_PROXY_UNSUPPORTED);
	sk = proxy_established(skb, f);
	if (!sk)
		return drop(skb, f, d, DROP_PROXY_UNAVAILABLE);
	ret = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (ret)
		return drop(skb, f, d, DROP_PROXY_ASSIGN);
	skb->mark = MARK_MAGIC_TO_PROXY;
	count(REASON_FORWARDED, d->direction, f->len);
	return NM_TC_OK;
}

/* A reply on a flow the proxy opened with the client's address as source:
 * it must reach the proxy's upstream socket, not the client. */
static __always_inline int proxy_reply(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_sock *sk;
	long ret;

	if (f->t.proto != NM_PROTO_TCP)
		return NM_TC_OK;
	sk = proxy_established(skb, f);
	if (!sk)
		return NM_TC_OK;
	ret = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (ret == 0)
		skb->mark = MARK_MAGIC_TO_PROXY;
	return NM_TC_OK;
}
