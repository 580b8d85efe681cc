//go:build ignore

/* Program for the node's own network devices (uplinks, tunnels): tc/TCX
 * ingress, from_netdev.
 *
 * Traffic from outside the node reaches a workload through the node's IP
 * stack, and the stack's early demultiplexing would hand packets of a
 * connection the proxy accepted transparently to the proxy's socket and
 * then fail to route them. So a flow that policy redirects to the proxy is
 * assigned to the proxy's socket here, where the packet enters the node,
 * before the stack looks at it. Everything else is left to to_workload on
 * the workload's veth, which judges and counts it: this program only acts
 * on redirects and touches nothing that is not addressed to a local
 * workload.
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

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	struct decision d = { .direction = DIR_INGRESS };
	struct endpoint_info *dst;
	struct ct_entry *ct;
	struct remote peer;
	struct flow f;
	__u64 now;
	int ret;

	ret = parse_flow(skb, &f);
	if (ret != 0 || is_link_control(&f))
		return NM_TC_OK; /* the workload's own hook judges what we cannot parse */

	dst = endpoint_lookup(f.t.daddr);
	if (!dst)
		return NM_TC_OK;
	d.endpoint = dst->id;
	d.local_identity = dst->identity;

	now = now_ns();
	switch (ct_lookup(&f, &ct, now)) {
	case CT_ESTABLISHED:
		if ((ct->flags & CT_F_REDIRECT) && !(ct->flags & CT_F_FROM_PROXY))
			return proxy_deliver(skb, &f, &d, ct->proxy_port, 0);
		return NM_TC_OK;
	case CT_REPLY:
	case CT_RELATED:
		return NM_TC_OK;
	}

	/* A reply to an upstream connection the proxy opened with a
	 * workload's address as source (original-source binding) towards
	 * outside the node: no hook of ours saw that connection leave, so
	 * connection tracking does not know it, but the proxy's socket does.
	 * Only the proxy can own a socket with a workload's address in the
	 * node's namespace. */
	if (f.t.proto == NM_PROTO_TCP && (f.tcp_flags & (TCP_SYN | TCP_ACK)) != TCP_SYN) {
		struct bpf_sock *sk = proxy_established(skb, &f);

		if (sk) {
			long err = bpf_sk_assign(skb, sk, 0);

			bpf_sk_release(sk);
			if (err == 0)
				skb->mark = MARK_MAGIC_TO_PROXY;
			return NM_TC_OK;
		}
	}

	remote_lookup(f.t.saddr, &peer);
	d.remote_identity = peer.identity;
	d.remote_node = peer.node;
	if (policy_decide(policy_table(), &f, &d) != VERDICT_REDIRECT)
		return NM_TC_OK;
	if (ct_create(&f, CT_F_REDIRECT, d.proxy_port, peer.identity, DIR_INGRESS, now))
		return drop(skb, &f, &d, DROP_CT_FULL);
	return proxy_deliver(skb, &f, &d, d.proxy_port, 1);
}
