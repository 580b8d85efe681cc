/* Policy decisions.
 *
 * Rows are looked up from most to least specific: L4 specificity first
 * (exact port, then any port of the protocol, then any protocol), and for
 * each of those the exact remote identity before the wildcard. The first
 * row found decides, except that a deny row anywhere in the chain always
 * wins. A direction without enforcement allows everything.
 */
#pragma once

#include "common.h"
#include "maps.h"
#include "events.h"

static __always_inline int enforced(__u32 subject, __u8 dir)
{
	__u32 zero = 0, *flags;
	struct config *cfg = bpf_map_lookup_elem(&nm_config, &zero);

	if (cfg && cfg->enforce_mode == ENFORCE_MODE_NEVER)
		return 0;
	if (cfg && cfg->enforce_mode == ENFORCE_MODE_ALWAYS)
		return 1;
	flags = bpf_map_lookup_elem(&nm_enforce, &subject);
	if (!flags)
		return 0;
	return *flags & (dir == DIR_INGRESS ? ENFORCE_INGRESS : ENFORCE_EGRESS);
}

static __always_inline struct policy_value *policy_row(__u32 subject, __u32 remote, __u16 port,
						       __u8 proto, __u8 dir)
{
	struct policy_key k = {
		.subject = subject,
		.remote = remote,
		.port = port,
		.proto = proto,
		.direction = dir,
	};

	return bpf_map_lookup_elem(&nm_policy, &k);
}

/* Considers one candidate row: remembers the first non-deny row and flags
 * any deny. */
static __always_inline void consider(struct policy_value *v, struct policy_value *first,
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

/* Decides one direction for a new flow. d must already carry direction,
 * local/remote identity and remote node. Returns the verdict; on deny,
 * d->reason says why. */
static __always_inline int policy_decide(const struct flow *f, struct decision *d)
{
	struct policy_value first = {};
	int deny = 0;
	__u32 deny_cookie = 0;
	__u32 subject = d->local_identity, remote = d->remote_identity;
	__u16 port = f->policy_port;
	__u8 proto = f->t.proto, dir = d->direction;

	if (!enforced(subject, dir)) {
		d->verdict = VERDICT_ALLOW;
		d->reason = REASON_FORWARDED;
		return VERDICT_ALLOW;
	}
	consider(policy_row(subject, remote, port, proto, dir), &first, &deny, &deny_cookie);
	consider(policy_row(subject, 0, port, proto, dir), &first, &deny, &deny_cookie);
	if (port) {
		consider(policy_row(subject, remote, 0, proto, dir), &first, &deny, &deny_cookie);
		consider(policy_row(subject, 0, 0, proto, dir), &first, &deny, &deny_cookie);
	}
	consider(policy_row(subject, remote, 0, 0, dir), &first, &deny, &deny_cookie);
	consider(policy_row(subject, 0, 0, 0, dir), &first, &deny, &deny_cookie);

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
