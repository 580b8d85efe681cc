package kafkav1

import (
	"fmt"
	"net/netip"
	"strings"
)

// FilterName is the network filter name the Kafka policy filter is
// configured under.
const FilterName = "nodemesh.filters.network.kafka"

// TypeURL is the type URL of KafkaPolicy in an Any.
const TypeURL = "type.googleapis.com/nodemesh.filters.network.kafka.v1.KafkaPolicy"

// Kafka API keys the roles expand to.
const (
	keyProduce         = 0
	keyFetch           = 1
	keyListOffsets     = 2
	keyMetadata        = 3
	keyOffsetCommit    = 8
	keyOffsetFetch     = 9
	keyFindCoordinator = 10
	keyJoinGroup       = 11
	keyHeartbeat       = 12
	keyLeaveGroup      = 13
	keySyncGroup       = 14
	keyAPIVersions     = 18
	keyInitProducerID  = 22
	keyOffsetForEpoch  = 23
)

// RoleAPIKeys returns the API keys a role allows, and false for an unknown
// role. The empty role allows no key by itself.
//
// The expansion is Cilium's plus one key per role that today's default
// clients cannot work without: produce adds InitProducerId (idempotent
// writes are the default of the Java client since 3.0 and of franz-go),
// consume adds OffsetForLeaderEpoch (offset validation after leader
// changes, KIP-320). Both only read or allocate a producer id; neither
// touches a topic the rule does not name.
func RoleAPIKeys(role string) ([]int16, bool) {
	switch strings.ToLower(role) {
	case "":
		return nil, true
	case "produce":
		return []int16{keyProduce, keyMetadata, keyAPIVersions, keyInitProducerID}, true
	case "consume":
		return []int16{keyFetch, keyListOffsets, keyMetadata, keyOffsetCommit, keyOffsetFetch,
			keyFindCoordinator, keyJoinGroup, keyHeartbeat, keyLeaveGroup, keySyncGroup, keyAPIVersions, keyOffsetForEpoch}, true
	}
	return nil, false
}

// MaxTopicLength is the longest topic name a rule may hold (Cilium allows
// 255 for older brokers).
const MaxTopicLength = 255

// ValidateAll is Validate, named like the protoc-gen-validate method of
// Envoy's messages.
func (p *KafkaPolicy) ValidateAll() error { return p.Validate() }

// Validate checks the policy the way the proxy does before accepting it;
// the error names the offending field.
func (p *KafkaPolicy) Validate() error {
	if p == nil {
		return fmt.Errorf("kafka policy: missing")
	}
	for i, d := range p.GetDestinations() {
		if err := d.validate(); err != nil {
			return fmt.Errorf("destinations[%d]%s", i, err)
		}
	}
	return nil
}

func (d *KafkaDestination) validate() error {
	if len(d.GetAddresses()) == 0 {
		return fmt.Errorf(".addresses: at least one address or CIDR is required")
	}
	for j, a := range d.GetAddresses() {
		if _, err := ParsePrefix(a); err != nil {
			return fmt.Errorf(".addresses[%d]: %v", j, err)
		}
	}
	if d.GetPort() == 0 || d.GetPort() > 65535 {
		return fmt.Errorf(".port: %d is not a port number", d.GetPort())
	}
	if e := d.GetEndPort(); e != 0 && (e < d.GetPort() || e > 65535) {
		return fmt.Errorf(".end_port: %d must be between port %d and 65535", e, d.GetPort())
	}
	for j, r := range d.GetRules() {
		if err := r.validate(); err != nil {
			return fmt.Errorf(".rules[%d]%s", j, err)
		}
	}
	return nil
}

func (r *KafkaRule) validate() error {
	if len(r.GetPrincipals()) == 0 {
		return fmt.Errorf(".principals: at least one source CIDR is required (0.0.0.0/0 and ::/0 for any source)")
	}
	for k, a := range r.GetPrincipals() {
		if _, err := ParsePrefix(a); err != nil {
			return fmt.Errorf(".principals[%d]: %v", k, err)
		}
	}
	if _, ok := RoleAPIKeys(r.GetRole()); !ok {
		return fmt.Errorf(".role: unknown Kafka role %q (want produce or consume)", r.GetRole())
	}
	if r.GetRole() != "" && len(r.GetApiKeys()) > 0 {
		return fmt.Errorf(".api_keys: cannot be combined with role %q", r.GetRole())
	}
	for k, key := range r.GetApiKeys() {
		if key < 0 || key > 32767 {
			return fmt.Errorf(".api_keys[%d]: %d is not a Kafka API key", k, key)
		}
	}
	if r.ApiVersion != nil && (r.GetApiVersion() < 0 || r.GetApiVersion() > 32767) {
		return fmt.Errorf(".api_version: %d is not a Kafka API version", r.GetApiVersion())
	}
	if t := r.GetTopic(); t != "" {
		if len(t) > MaxTopicLength {
			return fmt.Errorf(".topic: longer than %d characters", MaxTopicLength)
		}
		for _, c := range t {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf(".topic: %q has characters other than a-z, A-Z, 0-9, '.', '_' and '-'", t)
			}
		}
	}
	return nil
}

// ParsePrefix parses an IP address (a host prefix) or a CIDR prefix,
// unmapping IPv4-mapped IPv6 addresses.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
