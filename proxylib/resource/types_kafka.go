package resource

import "net/netip"

// KafkaPolicy is a decoded Kafka policy filter configuration.
type KafkaPolicy struct {
	Destinations    []*KafkaDestination
	MaxRequestBytes uint32
}

// DefaultKafkaMaxRequest bounds a buffered Kafka request frame.
const DefaultKafkaMaxRequest = 16 << 20

// KafkaDestination holds the rules of one destination and port range.
type KafkaDestination struct {
	Name               string
	Prefixes           []netip.Prefix
	PortStart, PortEnd uint16 // inclusive
	Rules              []*KafkaRule
}

// KafkaRule is one decoded rule. APIKeys nil allows every key.
type KafkaRule struct {
	Name       string
	Principals []netip.Prefix
	APIKeys    map[int16]bool
	APIVersion int32 // -1: any
	ClientID   string
	Topic      string
}
