//go:build ignore

/* Programs for the host side of a workload's veth.
 *
 *   from_workload  tc/TCX ingress: packets the workload sends (its egress).
 *   to_workload    tc/TCX egress: packets delivered to the workload (its
 *                  ingress).
 *
 * New flows are judged by policy once, where the packet enters the node:
 * a flow between two local workloads gets both the sender's egress and the
 * receiver's ingress decision in from_workload, because only there (tc
 * ingress) can it still be handed to the proxy. Flows from anywhere else
 * (the host, other nodes, the proxy's upstream connections) are judged in
 * to_workload. The decision is stored in connection tracking; later packets
 * and replies follow it without another policy lookup.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/identity.h"
#include "lib/events.h"
#include "lib/policy.h"
#include "lib/conntrack.h"
#include "lib/proxy.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/* Whether a new flow is addressed to a Service in a way socket-level
 * translation (sock.c) did not resolve: an exact frontend, any address of
 * the Service ranges (whatever the port or protocol), or a NodePort on a
 * node's address (the host's own or another node's, by the identity the
 * ipcache gives the destination). */
static __always_inline int service_destination(const struct flow *f, __u32 dst_identity)
{
	struct ipcache_key rk = { .prefixlen = 128 };
	struct svc_key k = {};

	__builtin_memcpy(rk.addr, f->t.daddr, 16);
	if (bpf_map_lookup_elem(&nm_svc_ranges, &rk))
		return 1;
	if (f->t.proto != NM_PROTO_TCP && f->t.proto != NM_PROTO_UDP && f->t.proto != NM_PROTO_SCTP)
		return 0;
	__builtin_memcpy(k.addr, f->t.daddr, 16);
	k.port = f->t.dport;
	k.proto = f->t.proto;
	if (bpf_map_lookup_elem(&nm_services, &k))
		return 1;
	if (dst_identity != ID_HOST && dst_identity != ID_REMOTE_NODE)
		return 0;
	__builtin_memset(k.addr, 0, 16);
	return bpf_map_lookup_elem(&nm_services, &k) != 0;
}

static __always_inline int proxy_reads_ct_identity(void)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&nm_config, &zero);

	return cfg && (cfg->flags & CONFIG_F_PROXY_CT_IDENTITY);
}

static __always_inline int pass(const struct flow *f, __u8 dir)
{
	count(REASON_FORWARDED, dir, f->len);
	return NM_TC_OK;
}

SEC("tc")
int from_workload(struct __sk_buff *skb)
{
	struct decision d = { .direction = DIR_EGRESS };
	struct endpoint_info *src, *dst;
	struct ct_entry *ct;
	struct remote peer;
	struct flow f;
	void *table;
	__u64 now;
	int ret;

	ret = parse_flow(skb, &f);
	if (ret == PARSE_NOT_IP)
		return NM_TC_OK;

	/* Second half of an egress-side redirect (see proxy_hairpin). */
	if ((skb->mark & MARK_MAGIC_MASK) == MARK_MAGIC_TO_PROXY && (skb->mark >> 16)) {
		d.direction = DIR_INGRESS;
		if (ret < 0)
			return drop(skb, &f, &d, -ret);
		dst = endpoint_lookup(f.t.daddr);
		if (dst) {
			d.endpoint = dst->id;
			d.local_identity = dst->identity;
		}
		/* The frame still carries the workload's MAC as destination,
		 * which makes it "for another host" on this interface; the
		 * stack would drop it before looking at the assigned socket. */
		bpf_skb_change_type(skb, 0 /* PACKET_HOST */);
		return proxy_deliver(skb, &f, &d, skb->mark >> 16, 0);
	}
	/* Second half of a reply hairpin (see proxy_reply_hairpin). */
	if ((skb->mark & MARK_MAGIC_MASK) == MARK_MAGIC_PROXY_REPLY) {
		d.direction = DIR_INGRESS;
		if (ret < 0)
			return drop(skb, &f, &d, -ret);
		bpf_skb_change_type(skb, 0 /* PACKET_HOST */);
		return proxy_return(skb, &f, &d);
	}
	if (ret < 0)
		return drop(skb, &f, &d, -ret);
	if (is_link_control(&f))
		return NM_TC_OK;

	src = endpoint_lookup(f.t.saddr);
	if (!src || src->ifindex != skb->ifindex)
		return drop(skb, &f, &d, DROP_SPOOFED_SOURCE);
	d.endpoint = src->id;
	d.local_identity = src->identity;

	now = now_ns();
	switch (ct_lookup(&f, &ct, now)) {
	case CT_ESTABLISHED:
		if (ct->flags & CT_F_REDIRECT) {
			d.direction = ct->direction;
			return proxy_deliver(skb, &f, &d, ct->proxy_port, 0);
		}
		return pass(&f, ct->direction);
	case CT_REPLY:
		if (ct->flags & CT_F_FROM_PROXY) {
			count(REASON_FORWARDED, ct->direction, f.len);
			return proxy_reply(skb, &f);
		}
		return pass(&f, ct->direction);
	case CT_RELATED:
		return pass(&f, DIR_EGRESS);
	}

	/* New flow: the sender's egress policy. A flow still addressed to a
	 * Service bypassed socket-level translation (a socket outside the
	 * node's Pod cgroup, an IPv6 frontend, a Service learnt after the
	 * connect or deleted before it, an address of the Service range no
	 * Service owns, a port or protocol no frontend has, a NodePort); its
	 * real destination is only known after the node's NAT, so an egress
	 * policy cannot judge it here and it is dropped rather than judged
	 * as the Service address. */
	table = policy_table();
	remote_lookup(f.t.daddr, &peer);
	if (enforced(table, src->identity, DIR_EGRESS) && service_destination(&f, peer.identity))
		return drop(skb, &f, &d, DROP_SERVICE_FRONTEND);
	d.remote_identity = peer.identity;
	d.remote_node = peer.node;
	ret = policy_decide(table, &f, &d);
	if (ret == VERDICT_DENY)
		return drop(skb, &f, &d, d.reason);
	if (ret == VERDICT_REDIRECT) {
		if (ct_create(&f, CT_F_REDIRECT, d.proxy_port, src->identity, DIR_EGRESS, now))
			return drop(skb, &f, &d, DROP_CT_FULL);
		return proxy_deliver(skb, &f, &d, d.proxy_port, 1);
	}

	/* A local receiver's ingress policy, decided here so an L7 redirect
	 * can still be done on this hook. */
	dst = endpoint_lookup(f.t.daddr);
	if (dst) {
		struct decision in = {
			.direction = DIR_INGRESS,
			.endpoint = dst->id,
			.local_identity = dst->identity,
			.remote_identity = src->identity,
		};

		ret = policy_decide(table, &f, &in);
		if (ret == VERDICT_DENY)
			return drop(skb, &f, &in, in.reason);
		if (ret == VERDICT_REDIRECT) {
			if (ct_create(&f, CT_F_REDIRECT, in.proxy_port, src->identity, DIR_INGRESS, now))
				return drop(skb, &f, &in, DROP_CT_FULL);
			return proxy_deliver(skb, &f, &in, in.proxy_port, 1);
		}
	}
	if (ct_create(&f, 0, 0, src->identity, DIR_EGRESS, now))
		return drop(skb, &f, &d, DROP_CT_FULL);
	return pass(&f, DIR_EGRESS);
}

SEC("tc")
int to_workload(struct __sk_buff *skb)
{
	struct decision d = { .direction = DIR_INGRESS };
	struct endpoint_info *dst;
	struct ct_entry *ct;
	struct remote peer;
	struct flow f;
	__u32 mark = skb->mark;
	int from_proxy, routed, ret;
	__u32 addr_identity;
	__u8 flags = 0;
	__u64 now;

	ret = parse_flow(skb, &f);
	if (ret == PARSE_NOT_IP)
		return NM_TC_OK;
	if (ret < 0)
		return drop(skb, &f, &d, -ret);
	if (is_link_control(&f))
		return NM_TC_OK;

	dst = endpoint_lookup(f.t.daddr);
	if (!dst)
		return NM_TC_OK; /* not addressed to a workload we manage */
	d.endpoint = dst->id;
	d.local_identity = dst->identity;

	now = now_ns();
	switch (ct_lookup(&f, &ct, now)) {
	case CT_ESTABLISHED:
		if ((ct->flags & CT_F_REDIRECT) && !(ct->flags & CT_F_FROM_PROXY))
			return proxy_hairpin(skb, ct->proxy_port);
		return pass(&f, ct->direction);
	case CT_REPLY:
		/* A policy listener answering a routing listener's upstream
		 * connection that was bound to this workload's address. */
		if (ct->flags & CT_F_PROXY_CLIENT)
			return proxy_reply_hairpin(skb);
		return pass(&f, ct->direction);
	case CT_RELATED:
		return pass(&f, DIR_INGRESS);
	}

	/* Two kinds of proxy upstream connection: a policy listener's
	 * (FROM_PROXY) already had this destination's L7 ingress rules
	 * applied and is never redirected again; a routing listener's
	 * (FROM_PROXY_ROUTE: Gateway, Ingress, GAMMA, CiliumEnvoyConfig,
	 * lb-l7) had none, so it is judged like any other flow from its
	 * identity, L7 redirect included. */
	from_proxy = (mark & MARK_MAGIC_MASK) == MARK_MAGIC_FROM_PROXY;
	routed = (mark & MARK_MAGIC_MASK) == MARK_MAGIC_FROM_PROXY_ROUTE;
	remote_lookup(f.t.saddr, &peer);
	addr_identity = peer.identity;
	/* The proxy says on whose behalf it connects; the source address may
	 * be the node's own. */
	if ((from_proxy || routed) && mark_identity(mark))
		peer.identity = mark_identity(mark);
	d.remote_identity = peer.identity;
	d.remote_node = peer.node;

	if (from_proxy || routed) {
		/* Replies to an original-source address go to the proxy. */
		flags = CT_F_FROM_PROXY;
	} else if (peer.identity == ID_HOST) {
		/* The local host may always reach its workloads (probes). */
		if (ct_create(&f, 0, 0, ID_HOST, DIR_INGRESS, now))
			return drop(skb, &f, &d, DROP_CT_FULL);
		return pass(&f, DIR_INGRESS);
	}

	ret = policy_decide(policy_table(), &f, &d);
	if (ret == VERDICT_DENY)
		return drop(skb, &f, &d, d.reason);
	/* A routing connection whose mark names another identity than its
	 * address's (a Gateway's, as ingress, from a node without an
	 * ingress address) must be judged by the mark's identity there. A
	 * policy listener that reads only addresses would apply the
	 * address's L7 rules, e.g. the host's: refuse it then. */
	if (ret == VERDICT_REDIRECT && routed && peer.identity != addr_identity && !proxy_reads_ct_identity())
		return drop(skb, &f, &d, DROP_ROUTE_IDENTITY);
	if (ret == VERDICT_REDIRECT && !from_proxy) {
		/* A routing listener's connection goes to the policy listener:
		 * the proxy's socket is then the client of a proxy socket, and
		 * its replies must find their way back (CT_F_PROXY_CLIENT). */
		flags = routed ? CT_F_REDIRECT | CT_F_PROXY_CLIENT : CT_F_REDIRECT;
		/* The policy listener reads the identity from this entry. When
		 * the mark names another identity than the source address's
		 * (a Gateway's, as ingress, from a node without an ingress
		 * address), the address must not judge the connection there:
		 * it would borrow the address's (e.g. the host's) L7 rules. */
		if (routed && peer.identity != addr_identity)
			flags |= CT_F_MARK_IDENTITY;
		if (ct_create(&f, flags, d.proxy_port, peer.identity, DIR_INGRESS, now))
			return drop(skb, &f, &d, DROP_CT_FULL);
		emit(skb, &f, &d, EVENT_REDIRECT);
		return proxy_hairpin(skb, d.proxy_port);
	}
	/* A policy listener's upstream connections are never redirected
	 * again. */
	if (ct_create(&f, flags, 0, peer.identity, DIR_INGRESS, now))
		return drop(skb, &f, &d, DROP_CT_FULL);
	return pass(&f, DIR_INGRESS);
}
