//go:build ignore

/* Socket-level Service translation for the Pods of one node, attached to
 * the node's Pod cgroup (cgroup/connect4, sendmsg4, recvmsg4,
 * getpeername4).
 *
 * A Pod that connects to (or sends a datagram to) a Service frontend
 * {ClusterIP, port, protocol} gets one of the Service's ready backends
 * instead, chosen at random, before the first packet exists. The packets
 * then carry the backend Pod's address from the start, so from_workload
 * judges egress policy and hands L7 redirects to the proxy with the real
 * destination; nothing is translated per packet and no reply needs a
 * reverse translation. What the socket reports as its peer (recvmsg's
 * source, getpeername) is turned back into the frontend, so a resolver
 * that checks where its answer came from still accepts it.
 *
 * A frontend without ready backends refuses the connect or send (EPERM)
 * instead of letting the address through untranslated: an untranslated
 * flow would be judged against the ClusterIP, which no policy names.
 * IPv4 only; IPv6 frontends pass untranslated (and from_workload refuses
 * to judge them under egress enforcement).
 */
#include "lib/common.h"
#include "lib/maps.h"

char _license[] SEC("license") = "Dual BSD/GPL";

#define SOCK_PASS 1
#define SOCK_REFUSE 0

static __always_inline void v4_mapped(__u8 *out, __u32 be_addr)
{
	__builtin_memset(out, 0, 16);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &be_addr, 4);
}

static __always_inline __u32 v4_of(const __u8 *a)
{
	__u32 v;

	__builtin_memcpy(&v, a + 12, 4);
	return v;
}

static __always_inline int same_addr(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

static __always_inline __u8 sock_proto(struct bpf_sock_addr *ctx)
{
	if (ctx->type == 1 /* SOCK_STREAM */ && ctx->protocol == NM_PROTO_TCP)
		return NM_PROTO_TCP;
	if (ctx->type == 2 /* SOCK_DGRAM */ && ctx->protocol == NM_PROTO_UDP)
		return NM_PROTO_UDP;
	return 0;
}

/* Rewrites the destination of ctx to a backend when it names a frontend.
 * Returns SOCK_PASS (translated or not a frontend) or SOCK_REFUSE (a
 * frontend without backends, or the bookkeeping failed). */
static __always_inline int translate4(struct bpf_sock_addr *ctx)
{
	struct svc_key k = {};
	struct svc_value *fe, *be;
	struct revnat_key rk = {};
	struct revnat_value rv = {}, *cur;
	__u8 proto = sock_proto(ctx);
	__u16 count;

	if (!proto)
		return SOCK_PASS;
	v4_mapped(k.addr, ctx->user_ip4);
	k.port = bpf_ntohs((__u16)ctx->user_port);
	k.proto = proto;
	fe = bpf_map_lookup_elem(&nm_services, &k);
	if (!fe)
		return SOCK_PASS;
	/* One read: the reconciler may rewrite the row between two. */
	count = *(volatile __u16 *)&fe->count;
	if (!count)
		return SOCK_REFUSE;
	k.slot = (bpf_get_prandom_u32() % count) + 1;
	be = bpf_map_lookup_elem(&nm_services, &k);
	if (!be)
		return SOCK_REFUSE; /* a writer mid-update; never pass the frontend */

	rk.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rk.addr, be->addr, 16);
	rk.port = be->port;
	__builtin_memcpy(rv.addr, k.addr, 16);
	rv.port = k.port;
	/* A UDP socket sends many datagrams to the same backend: write the
	 * entry only when it is new or names another frontend (the lookup
	 * keeps it recently used in the LRU all the same). */
	cur = bpf_map_lookup_elem(&nm_revnat, &rk);
	if (!cur || cur->port != rv.port || !same_addr(cur->addr, rv.addr))
		if (bpf_map_update_elem(&nm_revnat, &rk, &rv, BPF_ANY))
			return SOCK_REFUSE;

	ctx->user_ip4 = v4_of(be->addr);
	ctx->user_port = bpf_htons(be->port);
	return SOCK_PASS;
}

/* Turns a backend peer back into the frontend the socket asked for. */
static __always_inline void reverse4(struct bpf_sock_addr *ctx)
{
	struct revnat_key rk = {};
	struct revnat_value *rv;

	if (!sock_proto(ctx))
		return;
	rk.cookie = bpf_get_socket_cookie(ctx);
	v4_mapped(rk.addr, ctx->user_ip4);
	rk.port = bpf_ntohs((__u16)ctx->user_port);
	rv = bpf_map_lookup_elem(&nm_revnat, &rk);
	if (!rv)
		return;
	ctx->user_ip4 = v4_of(rv->addr);
	ctx->user_port = bpf_htons(rv->port);
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return translate4(ctx);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return translate4(ctx);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	reverse4(ctx);
	return 1; /* recvmsg hooks must return 1 */
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	reverse4(ctx);
	return 1; /* getpeername hooks must return 1 */
}
