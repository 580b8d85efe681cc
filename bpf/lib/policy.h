/* Policy decisions.
 *
 * Rows are looked up from most to least specific: L4 specificity first
 * (exact port, then any port of the protocol, then any protocol), and for
 * each of those the exact remote identity before the wildcard. The first
 * row found decides, except that a deny row anywhere in the chain always
 * wins. A direction without enforcement allows everything.
 *
 * Every lookup goes to one policy table, which the caller fetched once
 * for the packet with policy_table(): the agent publishes a new policy as
 * a new table, so a packet never sees part of one version and part of
 * another (several lookups in one table that was being written row by
 * row could each see a different moment of the update, a mix that
 * neither the old nor the new policy gives).
 */
#pragma once

#include "common.h"
#include "maps.h"
#include "events.h"

/* The policy table in force, or NULL if the agent never published one
 * (the loader publishes an empty one before attaching anything). */
static __always_inline void *policy_table(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nm_policy, &zero);
}

/* Out of line on purpose: the policy table's definition names its key
 * and value by size only (see maps.h), so the prototypes of policy_lookup
 * and consider are what put struct policy_key and struct policy_value
 * into the object's BTF, from which the Go types are generated. */
static __attribute__((noinline)) struct policy_value *policy_lookup(void *table,
								   const struct policy_key *k)
{
	return bpf_map_lookup_elem(table, k);
}

/* Looks up k's subject and direction with the given remote, port and
 * protocol. */
static __always_inline struct policy_value *policy_row(void *table, struct policy_key *k,
						       __u32 remote, __u16 port, __u8 proto)
{
	k->remote = remote;
	k->port = port;
	k->proto = proto;
	return policy_lookup(table, k);
}

/* Whether subject is default-deny in dir. Without a table nothing can be
 * allowed, so everything is enforced (and then denied). */
static __always_inline int enforced(void *table, __u32 subject, __u8 dir)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&nm_config, &zero);
	struct policy_value *row;
	struct policy_key k;

	if (cfg && cfg->enforce_mode == ENFORCE_MODE_NEVER)
		return 0;
	if (cfg && cfg->enforce_mode == ENFORCE_MODE_ALWAYS)
		return 1;
	if (!table)
		return 1;
	k.subject = subject;
	k.direction = POLICY_DIR_ENFORCE;
	row = policy_row(table, &k, 0, 0, 0);
	if (!row)
		return 0;
	return row->verdict & (dir == DIR_INGRESS ? ENFORCE_INGRESS : ENFORCE_EGRESS);
}

/* Considers one candidate row: remembers the first non-deny row and flags
 * any deny. Out of line, see policy_lookup. */
static __attribute__((noinline)) void consider(const struct policy_value *v, struct policy_value *first,
					       int *deny, __u32 *deny_cookie)
{
	if (!v)
		return;
	if (v->verdict == VERDICT_DENY) {
		if (!*deny)
			*deny_cookie = v->cookie;
		*deny = 1;
		return;
	}
	if (!first->verdict)
		*first = *v;
}

static __always_inline int auth_valid(__u32 local, __u32 remote, __u16 node, __u8 type)
{
	struct auth_key k = {
		.local = local,
		.remote = remote,
		.remote_node = node,
		.auth_type = type,
	};
	struct auth_value *v = bpf_map_lookup_elem(&nm_auth, &k);

	return v && v->expiry > now_ns();
}

/* Decides one direction for a new flow by the rows of table (from
 * policy_table(), may be NULL). d must already carry direction,
 * local/remote identity and remote node. Returns the verdict; on deny,
 * d->reason says why. */
static __always_inline int policy_decide(void *table, const struct flow *f, struct decision *d)
{
	struct policy_value first = {};
	int deny = 0;
	__u32 deny_cookie = 0;
	__u32 subject = d->local_identity, remote = d->remote_identity;
	__u16 port = f->policy_port;
	__u8 proto = f->t.proto, dir = d->direction;
	struct policy_key k;

	if (!enforced(table, subject, dir)) {
		d->verdict = VERDICT_ALLOW;
		d->reason = REASON_FORWARDED;
		return VERDICT_ALLOW;
	}
	if (!table) {
		d->verdict = VERDICT_DENY;
		d->reason = DROP_POLICY;
		return VERDICT_DENY;
	}
	k.subject = subject;
	k.direction = dir;
	consider(policy_row(table, &k, remote, port, proto), &first, &deny, &deny_cookie);
	consider(policy_row(table, &k, 0, port, proto), &first, &deny, &deny_cookie);
	if (port) {
		consider(policy_row(table, &k, remote, 0, proto), &first, &deny, &deny_cookie);
		consider(policy_row(table, &k, 0, 0, proto), &first, &deny, &deny_cookie);
	}
	consider(policy_row(table, &k, remote, 0, 0), &first, &deny, &deny_cookie);
	consider(policy_row(table, &k, 0, 0, 0), &first, &deny, &deny_cookie);

	if (deny) {
		d->verdict = VERDICT_DENY;
		d->reason = DROP_POLICY_DENY;
		d->cookie = deny_cookie;
		return VERDICT_DENY;
	}
	if (!first.verdict) {
		d->verdict = VERDICT_DENY;
		d->reason = DROP_POLICY;
		return VERDICT_DENY;
	}
	d->cookie = first.cookie;
	d->auth_type = first.auth_type;
	if (first.auth_type &&
	    !auth_valid(subject, remote, d->remote_node, first.auth_type)) {
		d->verdict = VERDICT_DENY;
		d->reason = DROP_AUTH_REQUIRED;
		return VERDICT_DENY;
	}
	if (first.verdict == VERDICT_REDIRECT) {
		if (proto != NM_PROTO_TCP) {
			d->verdict = VERDICT_DENY;
			d->reason = DROP_PROXY_UNSUPPORTED;
			return VERDICT_DENY;
		}
		d->verdict = VERDICT_REDIRECT;
		d->reason = REASON_REDIRECTED;
		d->proxy_port = first.proxy_port;
		return VERDICT_REDIRECT;
	}
	d->verdict = VERDICT_ALLOW;
	d->reason = REASON_FORWARDED;
	return VERDICT_ALLOW;
}
