package kafka

import (
	"net/netip"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Verdict is the policy decision about one request.
type Verdict struct {
	Allowed bool
	// Policy names what allowed the request: the rule, or the destination
	// entry when it has no rules.
	Policy string
	// Reason says why a request was denied: "unknown_destination",
	// "request_not_allowed" (no rule matches its source, key, version and
	// client id) or "topic_not_allowed".
	Reason string
}

// Decide judges a request from src to dst. See kafka.proto for the
// semantics.
func Decide(p *resource.KafkaPolicy, src netip.Addr, dst netip.AddrPort, r *Request) Verdict {
	d := destination(p, dst)
	if d == nil {
		return Verdict{Reason: "unknown_destination"}
	}
	if len(d.Rules) == 0 {
		return Verdict{Allowed: true, Policy: d.Name}
	}
	src = src.Unmap()
	var first *resource.KafkaRule
	anyTopic := false
	var matching []*resource.KafkaRule
	for _, rule := range d.Rules {
		if !ruleMatches(rule, src, r) {
			continue
		}
		if first == nil {
			first = rule
		}
		if rule.Topic == "" {
			anyTopic = true
		}
		matching = append(matching, rule)
	}
	if first == nil {
		return Verdict{Reason: "request_not_allowed"}
	}
	if len(r.Topics) == 0 && !r.UnknownTopics {
		return Verdict{Allowed: true, Policy: first.Name}
	}
	if r.UnknownTopics && !anyTopic {
		return Verdict{Reason: "topic_not_allowed"}
	}
	policy := ""
	for _, t := range r.Topics {
		var by *resource.KafkaRule
		for _, rule := range matching {
			if rule.Topic == "" || rule.Topic == t {
				by = rule
				break
			}
		}
		if by == nil {
			return Verdict{Reason: "topic_not_allowed"}
		}
		if policy == "" {
			policy = by.Name
		}
	}
	if policy == "" {
		policy = first.Name
	}
	return Verdict{Allowed: true, Policy: policy}
}

func destination(p *resource.KafkaPolicy, dst netip.AddrPort) *resource.KafkaDestination {
	if p == nil {
		return nil
	}
	a := dst.Addr().Unmap()
	for _, d := range p.Destinations {
		if dst.Port() < d.PortStart || dst.Port() > d.PortEnd {
			continue
		}
		for _, pf := range d.Prefixes {
			if pf.Contains(a) {
				return d
			}
		}
	}
	return nil
}

func ruleMatches(rule *resource.KafkaRule, src netip.Addr, r *Request) bool {
	if rule.APIKeys != nil && !rule.APIKeys[r.Key] {
		return false
	}
	if rule.APIVersion >= 0 && int32(r.Version) != rule.APIVersion {
		return false
	}
	if rule.ClientID != "" && rule.ClientID != r.ClientID {
		return false
	}
	for _, pf := range rule.Principals {
		if pf.Contains(src) {
			return true
		}
	}
	return false
}
