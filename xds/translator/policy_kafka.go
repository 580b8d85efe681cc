package translator

import (
	"fmt"
	"net/netip"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

// kafkaConfig builds the Kafka policy filter's configuration for one
// direction. The filter judges a connection by its original destination:
// the first destination entry whose addresses contain it (and whose port
// matches) holds every rule that applies there. Entries are therefore one
// per destination prefix and port, most specific prefix first, and each
// carries the rules of every policy whose destinations contain it.
//
// Ingress destinations are the local endpoints and rule principals the
// peers; egress destinations are the peers and principals the endpoints.
// The filter's principals and destinations are plain prefixes: a peer
// term's exceptions cannot be expressed, so the term is used whole (more
// permissive, reported as a warning).
func (b *builder) kafkaConfig(p *ir.Policy, l *ir.PolicyListener) (*corev3.TypedExtensionConfig, error) {
	type destKey struct {
		prefix netip.Prefix
		port   uint32
	}
	type ruleAt struct {
		prefix netip.Prefix
		port   uint32
		rule   *kafkav1.KafkaRule
	}
	var rules []ruleAt
	dests := map[destKey]bool{}
	for i, k := range p.Kafka {
		if k.Direction != l.Direction {
			continue
		}
		obj := object("Kafka policy", k.Name)
		peers := b.kafkaPrefixes(obj, fieldf("kafka[%d].peers", i), k.Peers)
		var at, principals []string
		if k.Direction == ir.PolicyIngress {
			at, principals = k.Endpoints, peers
		} else {
			at, principals = peers, k.Endpoints
		}
		for _, d := range at {
			pfx := netip.MustParsePrefix(d) // validated by ir.Config.Validate
			dests[destKey{pfx, k.Port}] = true
			rules = append(rules, ruleAt{pfx, k.Port, kafkaRule(k, principals)})
		}
	}
	keys := make([]destKey, 0, len(dests))
	for d := range dests {
		keys = append(keys, d)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, c := keys[i], keys[j]
		switch {
		case a.prefix.Bits() != c.prefix.Bits():
			return a.prefix.Bits() > c.prefix.Bits()
		case a.prefix.Addr() != c.prefix.Addr():
			return a.prefix.Addr().Less(c.prefix.Addr())
		}
		return a.port < c.port
	})
	cfg := &kafkav1.KafkaPolicy{}
	for _, d := range keys {
		dest := &kafkav1.KafkaDestination{
			Name:      fmt.Sprintf("%s %s port %d", l.Direction, d.prefix, d.port),
			Addresses: []string{d.prefix.String()},
			Port:      d.port,
		}
		seen := map[string]bool{}
		for _, r := range rules {
			// A broader destination's rules apply here too (the filter
			// stops at the first, most specific, entry).
			if r.port == d.port && r.prefix.Bits() <= d.prefix.Bits() && r.prefix.Contains(d.prefix.Addr()) && !seen[r.rule.GetName()] {
				seen[r.rule.GetName()] = true
				dest.Rules = append(dest.Rules, r.rule)
			}
		}
		sort.Slice(dest.Rules, func(i, j int) bool { return dest.Rules[i].GetName() < dest.Rules[j].GetName() })
		cfg.Destinations = append(cfg.Destinations, dest)
	}
	return b.extensionConfig(kafkaExtensionName(l.Direction), cfg)
}

// kafkaPrefixes flattens a peer set into plain prefixes.
func (b *builder) kafkaPrefixes(obj, field string, s ir.PeerSet) []string {
	if s.Any {
		return []string{"0.0.0.0/0", "::/0"}
	}
	out := make([]string, 0, len(s.Terms))
	for i, t := range s.Terms {
		if len(t.Except) > 0 {
			b.warn(obj, fieldf("%s.terms[%d].except", field, i), "the Kafka filter cannot exclude addresses from %s; the whole prefix is used", t.Prefix)
		}
		out = append(out, t.Prefix)
	}
	return out
}

func kafkaRule(k *ir.KafkaPolicy, principals []string) *kafkav1.KafkaRule {
	r := &kafkav1.KafkaRule{Name: k.Name, Principals: append([]string(nil), principals...)}
	if q := k.Request; q != nil {
		for _, key := range q.APIKeys {
			r.ApiKeys = append(r.ApiKeys, int32(key))
		}
		if q.HasAPIVersion {
			v := int32(q.APIVersion)
			r.ApiVersion = &v
		}
		r.ClientId = q.ClientID
		r.Topic = q.Topic
	}
	return r
}
