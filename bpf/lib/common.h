/* Types, constants and small helpers shared by every nodemesh BPF program.
 *
 * Every value that crosses the kernel/user boundary (map keys and values,
 * ring buffer records, skb marks) is defined here once; the Go side gets the
 * same layouts from the BTF that bpf2go turns into Go types, so a field can
 * never silently disagree between the two.
 *
 * Conventions:
 *   - addresses are 16 bytes in network order; IPv4 is stored IPv4-mapped
 *     (::ffff:a.b.c.d), so one key layout serves both families;
 *   - ports, identities and counters are in host order;
 *   - time is CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns), which keeps
 *     running across suspend and never jumps with the wall clock.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* tc verdicts (linux/pkt_cls.h values, restated to keep the include set
 * small and the generated BTF stable). */
#define NM_TC_OK 0
#define NM_TC_SHOT 2
#define NM_TC_REDIRECT 7

#define NM_ETH_HLEN 14
#define NM_ETH_P_IP 0x0800
#define NM_ETH_P_IPV6 0x86DD

#define NM_PROTO_ICMP 1
#define NM_PROTO_TCP 6
#define NM_PROTO_UDP 17
#define NM_PROTO_ICMPV6 58
#define NM_PROTO_SCTP 132

/* Reserved security identities, numerically compatible with Cilium. */
#define ID_UNKNOWN 0
#define ID_HOST 1
#define ID_WORLD 2
#define ID_UNMANAGED 3
#define ID_HEALTH 4
#define ID_INIT 5
#define ID_REMOTE_NODE 6
#define ID_KUBE_APISERVER 7
#define ID_INGRESS 8

/* Identities carried in a mark are 24 bits wide (Cilium's identity space:
 * 16 bits cluster-local plus 8 bits cluster id). */
#define ID_MARK_MAX 0xFFFFFF

/* skb->mark layout. Bits 8-11 hold a magic value that says who set the
 * mark; the remaining 24 bits carry a payload whose meaning depends on it.
 *
 *   FROM_PROXY: set by the node proxy (SO_MARK) on the upstream sockets
 *               of its policy listeners, which applied the destination's
 *               L7 ingress rules already: never redirected again.
 *               Payload = source identity: bits 16-31 low 16 bits, bits 0-7
 *               high 8 bits. Zero means "take the identity from the source
 *               address".
 *   FROM_PROXY_ROUTE: set by the node proxy on the upstream sockets of the
 *               listeners that route without applying any L7 ingress
 *               policy (Gateway, Ingress, GAMMA, CiliumEnvoyConfig,
 *               lb-l7). Same payload as FROM_PROXY. The destination's
 *               ingress policy, L7 redirect included, still applies.
 *   PROXY_REPLY: set by the datapath on a packet it loops from a
 *               workload's egress back to the same interface's ingress so
 *               that it reaches a proxy socket bound to a non-local
 *               (original source) address. No payload.
 *   TO_PROXY:   set by the datapath on packets it assigned to a proxy
 *               socket, so policy routing delivers them locally. Payload in
 *               bits 16-31 = proxy port (used by the egress-to-ingress
 *               hairpin; zero once assigned).
 */
#define MARK_MAGIC_MASK 0x0F00
#define MARK_MAGIC_TO_PROXY 0x0200
#define MARK_MAGIC_FROM_PROXY 0x0A00
#define MARK_MAGIC_FROM_PROXY_ROUTE 0x0B00
#define MARK_MAGIC_PROXY_REPLY 0x0300

static __always_inline __u32 mark_identity(__u32 mark)
{
	return (mark >> 16) | ((mark & 0xFF) << 16);
}

/* Policy directions, from the local workload's point of view. */
#define DIR_INGRESS 1
#define DIR_EGRESS 2
/* The direction of a policy table's enforcement row: key {subject, 0, 0,
 * 0, POLICY_DIR_ENFORCE}, the value's verdict holding the subject's
 * ENFORCE_* flags. No rule row has this direction, so the two never
 * collide. */
#define POLICY_DIR_ENFORCE 0

/* Policy verdicts. Zero is "no row". */
#define VERDICT_ALLOW 1
#define VERDICT_DENY 2
#define VERDICT_REDIRECT 3

/* Why a packet went where it went. Counters are indexed by
 * (reason << 1 | direction - 1); events carry the reason verbatim. */
enum nm_reason {
	REASON_FORWARDED = 0,
	REASON_REDIRECTED = 1,
	DROP_POLICY = 2,            /* endpoint enforces policy, no row allows it */
	DROP_POLICY_DENY = 3,       /* an explicit deny row matched */
	DROP_AUTH_REQUIRED = 4,     /* row needs mutual auth, no valid auth entry */
	DROP_INVALID = 5,           /* malformed or truncated headers */
	DROP_SPOOFED_SOURCE = 6,    /* source address not owned by this interface */
	DROP_FRAG_UNKNOWN = 7,      /* non-first fragment without a known first */
	DROP_PROXY_UNAVAILABLE = 8, /* no listener on the proxy port */
	DROP_PROXY_UNSUPPORTED = 9, /* redirect verdict for a protocol the proxy cannot take */
	DROP_CT_FULL = 10,          /* connection tracking entry could not be written */
	DROP_PROXY_ASSIGN = 11,     /* kernel refused to assign the proxy socket */
	DROP_SERVICE_FRONTEND = 12, /* egress-enforced flow still addressed to a Service frontend */
	DROP_ROUTE_IDENTITY = 13,   /* routed connection whose marked identity the policy listener cannot see */
	REASON_MAX = 16,
};

#define COUNTER_SLOTS (REASON_MAX * 2)

/* Ring buffer record types. */
#define EVENT_DROP 1
#define EVENT_REDIRECT 2
#define EVENT_AUTH_REQUIRED 3

/* Global enforcement mode (Cilium's policy-enforcement-mode). */
#define ENFORCE_MODE_DEFAULT 0 /* enforce where a policy selects the identity */
#define ENFORCE_MODE_ALWAYS 1  /* every managed endpoint is default-deny */
#define ENFORCE_MODE_NEVER 2   /* policy rows are ignored, everything passes */

/* Enforcement flags per local identity. */
#define ENFORCE_INGRESS 0x1
#define ENFORCE_EGRESS 0x2

/* Connection tracking flags. */
#define CT_F_REDIRECT 0x01   /* forward packets go to the proxy at proxy_port */
#define CT_F_FROM_PROXY 0x02 /* opened by the node proxy (upstream leg) */
#define CT_F_SEEN_REPLY 0x04
#define CT_F_FIN_FWD 0x08
#define CT_F_FIN_REV 0x10
#define CT_F_RST 0x20
#define CT_F_PROXY_CLIENT 0x40 /* redirected flow whose client is a proxy socket */
#define CT_F_MARK_IDENTITY 0x80 /* src_identity is a routing mark's, not the source address's */

/* Lifetimes, seconds (Cilium's defaults). */
#define CT_LIFETIME_TCP 21600
#define CT_LIFETIME_SYN 60
#define CT_LIFETIME_CLOSE 10
#define CT_LIFETIME_NONTCP 60

#define NSEC_PER_SEC 1000000000ULL

struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct policy_key {
	__u32 subject;   /* local identity the row belongs to */
	__u32 remote;    /* remote identity, 0 = any */
	__u16 port;      /* destination port (ICMP: type), 0 = any */
	__u8 proto;      /* IP protocol, 0 = any (then port must be 0) */
	__u8 direction;  /* DIR_INGRESS or DIR_EGRESS (POLICY_DIR_ENFORCE) */
};

struct policy_value {
	__u8 verdict;     /* VERDICT_* */
	__u8 auth_type;   /* 0 = no mutual auth required */
	__u16 proxy_port; /* VERDICT_REDIRECT only */
	__u32 cookie;     /* opaque rule reference echoed in events */
};

struct endpoint_key {
	__u8 addr[16];
};

struct endpoint_info {
	__u32 identity;
	__u32 ifindex;
	__u16 id;
	__u16 pad;
};

struct ipcache_key {
	__u32 prefixlen; /* 96 + IPv4 prefix length for IPv4 */
	__u8 addr[16];
};

struct ipcache_value {
	__u32 identity;
	__u16 node;  /* node id hosting the address, 0 = this node */
	__u16 pad;
};

struct auth_key {
	__u32 local;
	__u32 remote;
	__u16 remote_node;
	__u8 auth_type;
	__u8 pad;
};

struct auth_value {
	__u64 expiry; /* CLOCK_BOOTTIME ns */
};

struct ct_entry {
	__u64 lifetime; /* CLOCK_BOOTTIME ns after which the entry is dead */
	__u32 src_identity;
	__u16 proxy_port;
	__u8 flags;
	__u8 direction; /* policy direction that created it */
};

struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 proto;
	__u8 pad[3];
};

struct frag_ports {
	__u16 sport;
	__u16 dport;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct config {
	__u32 enforce_mode;
	__u32 flags; /* CONFIG_F_* */
};

/* The node proxy's policy listeners read each redirected connection's
 * source identity from connection tracking (CT_F_MARK_IDENTITY): a
 * routing connection whose marked identity its address lacks can be
 * redirected to them. Without it (a proxy that judges peers by address
 * only) such a connection is dropped (DROP_ROUTE_IDENTITY). */
#define CONFIG_F_PROXY_CT_IDENTITY 0x1

struct event {
	__u64 timestamp; /* CLOCK_BOOTTIME ns */
	__u8 type;       /* EVENT_* */
	__u8 reason;     /* enum nm_reason */
	__u8 direction;
	__u8 family;     /* 4 or 6 */
	__u8 proto;
	__u8 auth_type;
	__u16 proxy_port;
	__u16 sport;
	__u16 dport;
	__u32 ifindex;
	__u32 local_identity;
	__u32 remote_identity;
	__u16 remote_node;
	__u16 endpoint;
	__u32 cookie;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* The parsed view of one packet. */
struct flow {
	struct tuple t;     /* CT key in the packet's direction */
	__u32 len;          /* skb->len */
	__u16 policy_port;  /* dport, or ICMP type */
	__u8 family;        /* 4 or 6 */
	__u8 tcp_flags;
	__u8 related;       /* ICMP error: inner holds the offending flow */
	__u8 pad[3];
	struct tuple inner; /* valid when related */
};

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

static __always_inline int addr_is_v4(const __u8 *a)
{
	return a[10] == 0xff && a[11] == 0xff && a[0] == 0 && a[1] == 0 && a[2] == 0 &&
	       a[3] == 0 && a[4] == 0 && a[5] == 0 && a[6] == 0 && a[7] == 0 && a[8] == 0 &&
	       a[9] == 0;
}

static __always_inline void tuple_reverse(const struct tuple *in, struct tuple *out)
{
	__builtin_memcpy(out->saddr, in->daddr, 16);
	__builtin_memcpy(out->daddr, in->saddr, 16);
	out->sport = in->dport;
	out->dport = in->sport;
	out->proto = in->proto;
	out->pad[0] = 0;
	out->pad[1] = 0;
	out->pad[2] = 0;
}

static __always_inline __u64 now_ns(void)
{
	return bpf_ktime_get_boot_ns();
}

/* Socket-level Service translation (sock.c). A Service frontend is
 * {address, port, protocol} (a ClusterIP, external IP or load-balancer
 * IP); slot 0 of a frontend holds the number of backends, slots 1..count
 * hold one backend each. The writer fills the backend slots before it
 * raises the count and lowers the count before it removes slots, so a
 * reader never picks an empty slot. Two kinds of frontend are markers
 * with no backends that the socket programs never translate: SCTP ports
 * (no socket hook sees them) and NodePorts, stored with an all-zero
 * address (:: for both families, which no socket connects to as a
 * Service) and meaning "this port on any node's address". */
struct svc_key {
	__u8 addr[16];   /* frontend address; all zero for a NodePort */
	__u16 port;      /* frontend port */
	__u8 proto;      /* NM_PROTO_TCP, NM_PROTO_UDP or NM_PROTO_SCTP */
	__u8 pad;
	__u16 slot;      /* 0 = the frontend itself, 1..count = backends */
	__u16 pad2;
};

struct svc_value {
	__u8 addr[16];   /* backend address (slot > 0) */
	__u16 port;      /* backend port (slot > 0) */
	__u16 count;     /* number of ready backends (slot 0) */
	__u32 pad;
};

/* What a socket was translated from, so the peer it reports (recvmsg,
 * getpeername) is the Service it asked for, not the backend it got. */
struct revnat_key {
	__u64 cookie;    /* socket cookie */
	__u8 addr[16];   /* backend address */
	__u16 port;      /* backend port */
	__u16 pad[3];
};

struct revnat_value {
	__u8 addr[16];   /* frontend address */
	__u16 port;      /* frontend port */
	__u16 pad[3];
};
