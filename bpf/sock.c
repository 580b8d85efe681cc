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
 * IPv6 sockets go through the same table: an IPv6 frontend gets an IPv6
 * backend, and an IPv4 frontend written as a v4-mapped address (a
 * dual-stack socket) gets its IPv4 backend, v4-mapped, since the table
 * keys IPv4 addresses that way.
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

/* Outcomes of pick. */
#define PICK_PASS 0      /* not a frontend: leave the address alone */
#define PICK_TRANSLATE 1 /* *be is the backend to write into ctx */
#define PICK_REFUSE 2    /* a frontend without backends, or bookkeeping failed */

/* Looks up the frontend k names (k->addr in the table's 16-byte form),
 * picks one of its backends at random and records, for the socket, which
 * frontend that backend stands for. */
static __always_inline int pick(struct bpf_sock_addr *ctx, struct svc_key *k, struct svc_value **be)
{
	struct svc_value *fe;
	struct revnat_key rk = {};
	struct revnat_value rv = {}, *cur;
	__u16 count;

	k->proto = sock_proto(ctx);
	if (!k->proto)
		return PICK_PASS;
	k->port = bpf_ntohs((__u16)ctx->user_port);
	fe = bpf_map_lookup_elem(&nm_services, k);
	if (!fe)
		return PICK_PASS;
	/* One read: the reconciler may rewrite the row between two. */
	count = *(volatile __u16 *)&fe->count;
	if (!count)
		return PICK_REFUSE;
	rv.port = k->port;
	__builtin_memcpy(rv.addr, k->addr, 16);
	k->slot = (bpf_get_prandom_u32() % count) + 1;
	*be = bpf_map_lookup_elem(&nm_services, k);
	if (!*be)
		return PICK_REFUSE; /* a writer mid-update; never pass the frontend */

	rk.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rk.addr, (*be)->addr, 16);
	rk.port = (*be)->port;
	/* A UDP socket sends many datagrams to the same backend: write the
	 * entry only when it is new or names another frontend (the lookup
	 * keeps it recently used in the LRU all the same). */
	cur = bpf_map_lookup_elem(&nm_revnat, &rk);
	if (!cur || cur->port != rv.port || !same_addr(cur->addr, rv.addr))
		if (bpf_map_update_elem(&nm_revnat, &rk, &rv, BPF_ANY))
			return PICK_REFUSE;
	return PICK_TRANSLATE;
}

/* The frontend a socket was translated from, for the backend peer addr
 * (16-byte form) and the port in ctx; NULL when it was not translated. */
static __always_inline struct revnat_value *unpick(struct bpf_sock_addr *ctx, const __u8 *addr)
{
	struct revnat_key rk = {};

	if (!sock_proto(ctx))
		return 0;
	rk.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rk.addr, addr, 16);
	rk.port = bpf_ntohs((__u16)ctx->user_port);
	return bpf_map_lookup_elem(&nm_revnat, &rk);
}

static __always_inline void ip6_of_ctx(__u8 *out, const struct bpf_sock_addr *ctx)
{
	__u32 w[4];

	/* The context's address words must be read one 4-byte load each. */
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	__builtin_memcpy(out, w, 16);
}

static __always_inline void ip6_to_ctx(struct bpf_sock_addr *ctx, const __u8 *a)
{
	__u32 w[4];

	__builtin_memcpy(w, a, 16);
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
}

/* Rewrites the destination of ctx to a backend when it names a frontend.
 * Returns SOCK_PASS (translated or not a frontend) or SOCK_REFUSE. */
static __always_inline int translate4(struct bpf_sock_addr *ctx)
{
	struct svc_key k = {};
	struct svc_value *be = 0;
	int r;

	v4_mapped(k.addr, ctx->user_ip4);
	r = pick(ctx, &k, &be);
	if (r == PICK_REFUSE)
		return SOCK_REFUSE;
	if (r == PICK_TRANSLATE && be) {
		ctx->user_ip4 = v4_of(be->addr);
		ctx->user_port = bpf_htons(be->port);
	}
	return SOCK_PASS;
}

static __always_inline int translate6(struct bpf_sock_addr *ctx)
{
	struct svc_key k = {};
	struct svc_value *be = 0;
	int r;

	ip6_of_ctx(k.addr, ctx);
	r = pick(ctx, &k, &be);
	if (r == PICK_REFUSE)
		return SOCK_REFUSE;
	if (r == PICK_TRANSLATE && be) {
		ip6_to_ctx(ctx, be->addr);
		ctx->user_port = bpf_htons(be->port);
	}
	return SOCK_PASS;
}

/* Turns a backend peer back into the frontend the socket asked for. */
static __always_inline void reverse4(struct bpf_sock_addr *ctx)
{
	struct revnat_value *rv;
	__u8 addr[16];

	v4_mapped(addr, ctx->user_ip4);
	rv = unpick(ctx, addr);
	if (!rv)
		return;
	ctx->user_ip4 = v4_of(rv->addr);
	ctx->user_port = bpf_htons(rv->port);
}

static __always_inline void reverse6(struct bpf_sock_addr *ctx)
{
	struct revnat_value *rv;
	__u8 addr[16];

	ip6_of_ctx(addr, ctx);
	rv = unpick(ctx, addr);
	if (!rv)
		return;
	ip6_to_ctx(ctx, rv->addr);
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

SEC("cgroup/connect6")
int sock_connect6(struct bpf_sock_addr *ctx)
{
	return translate6(ctx);
}

SEC("cgroup/sendmsg6")
int sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return translate6(ctx);
}

SEC("cgroup/recvmsg6")
int sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	reverse6(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int sock_getpeername6(struct bpf_sock_addr *ctx)
{
	reverse6(ctx);
	return 1;
}
