/* Who is at the other end: local endpoints first, then the ipcache, then
 * "world". */
#pragma once

#include "common.h"
#include "maps.h"

struct remote {
	__u32 identity;
	__u16 node;
};

static __always_inline struct endpoint_info *endpoint_lookup(const __u8 *addr)
{
	struct endpoint_key k;

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&nm_endpoints, &k);
}

static __always_inline void remote_lookup(const __u8 *addr, struct remote *r)
{
	struct endpoint_info *ep = endpoint_lookup(addr);
	struct ipcache_key k;
	struct ipcache_value *v;

	r->node = 0;
	if (ep) {
		r->identity = ep->identity;
		return;
	}
	k.prefixlen = 128;
	__builtin_memcpy(k.addr, addr, 16);
	v = bpf_map_lookup_elem(&nm_ipcache, &k);
	if (v) {
		r->identity = v->identity;
		r->node = v->node;
		return;
	}
	r->identity = ID_WORLD;
}
