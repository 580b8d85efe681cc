/* Every map of the datapath. Sizes here are defaults; the loader may
 * override max_entries before creating them. Pinning is done by the loader
 * (it repairs incompatible pins), so no pinning attribute is set here. */
#pragma once

#include "common.h"

/* Local workload address -> endpoint. Written by the endpoint reconciler. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 4096);
} nm_endpoints SEC(".maps");

/* Address or prefix -> security identity, longest prefix wins. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} nm_ipcache SEC(".maps");

/* One version of the policy: {local identity, remote identity, port,
 * proto, direction} -> verdict, plus one enforcement row per enforced
 * local identity (see POLICY_DIR_ENFORCE). A table is filled completely
 * before it is published and never written again afterwards. */
struct policy_table {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* Sizes, not __type: clang 14 writes the types of an inner map
	 * definition into BTF as forward declarations only, which the loader
	 * cannot size. The generated Go types come from policy.h's
	 * prototypes instead (bpf2go -type). */
	__uint(key_size, sizeof(struct policy_key));
	__uint(value_size, sizeof(struct policy_value));
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
};

/* The policy table in force, in its only slot. A program looks the slot
 * up once per packet and does every policy lookup in the table it got,
 * so a packet is judged by one version of the policy, whatever the agent
 * publishes meanwhile: the agent replaces the whole table in one update
 * of this slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 1);
	__array(values, struct policy_table);
} nm_policy SEC(".maps");

/* {local identity, remote identity, remote node, auth type} -> expiry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct auth_key);
	__type(value, struct auth_value);
	__uint(max_entries, 524288);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} nm_auth SEC(".maps");

/* Connection tracking; LRU so a full table evicts the oldest flow instead
 * of failing new ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tuple);
	__type(value, struct ct_entry);
	__uint(max_entries, 262144);
} nm_ct SEC(".maps");

/* First-fragment ports, so later fragments get the same verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
	__uint(max_entries, 8192);
} nm_frag SEC(".maps");

/* Per-CPU packet/byte counters per (reason, direction). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, COUNTER_SLOTS);
} nm_counters SEC(".maps");

/* Events that could not be written to the ring buffer, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} nm_lost SEC(".maps");

/* Drop, redirect and auth-required events for the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} nm_events SEC(".maps");

/* Single-slot global settings. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct config);
	__uint(max_entries, 1);
} nm_config SEC(".maps");

/* Service frontends and their backends (see struct svc_key). Written by
 * the Service reconciler, read by the socket programs and by
 * from_workload (which refuses to judge a flow still addressed to a
 * frontend). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct svc_key);
	__type(value, struct svc_value);
	__uint(max_entries, 65536);
} nm_services SEC(".maps");

/* The cluster's Service address ranges (its ServiceCIDRs and every
 * ClusterIP as a host prefix), longest prefix wins; the value is unused
 * (1). Written by the Service reconciler, read by from_workload: a new
 * flow into a range under egress enforcement was not translated at
 * connect (an address no Service owns, a Service deleted since, a port or
 * protocol no frontend has), so its real destination is unknown. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, __u32);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} nm_svc_ranges SEC(".maps");

/* {socket, backend} -> frontend, for the names sockets report. LRU: an
 * entry outlives its socket until evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct revnat_key);
	__type(value, struct revnat_value);
	__uint(max_entries, 262144);
} nm_revnat SEC(".maps");
