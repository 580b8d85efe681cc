package kafkav1

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := func() *KafkaPolicy {
		return &KafkaPolicy{Destinations: []*KafkaDestination{{
			Name: "d", Addresses: []string{"10.0.0.1", "fd00::/64"}, Port: 9092,
			Rules: []*KafkaRule{{Name: "r", Principals: []string{"10.0.1.0/24"}, Role: "Consume", Topic: "events"}},
		}}}
	}
	if err := ok().ValidateAll(); err != nil {
		t.Fatalf("valid policy rejected: %v", err)
	}
	v := int32(-1)
	for _, tc := range []struct {
		name string
		mod  func(*KafkaPolicy)
		want string
	}{
		{"no addresses", func(p *KafkaPolicy) { p.Destinations[0].Addresses = nil }, "destinations[0].addresses: at least one"},
		{"bad address", func(p *KafkaPolicy) { p.Destinations[0].Addresses[1] = "fd00::/200" }, "destinations[0].addresses[1]"},
		{"port zero", func(p *KafkaPolicy) { p.Destinations[0].Port = 0 }, ".port"},
		{"end port below port", func(p *KafkaPolicy) { p.Destinations[0].EndPort = 80 }, ".end_port"},
		{"unknown role", func(p *KafkaPolicy) { p.Destinations[0].Rules[0].Role = "admin" }, `rules[0].role: unknown Kafka role "admin"`},
		{"role and keys", func(p *KafkaPolicy) { p.Destinations[0].Rules[0].ApiKeys = []int32{0} }, ".api_keys: cannot be combined"},
		{"no principals", func(p *KafkaPolicy) { p.Destinations[0].Rules[0].Principals = nil }, ".principals: at least one"},
		{"bad topic", func(p *KafkaPolicy) { p.Destinations[0].Rules[0].Topic = "a b" }, ".topic"},
		{"long topic", func(p *KafkaPolicy) { p.Destinations[0].Rules[0].Topic = strings.Repeat("a", 256) }, ".topic: longer"},
		{"negative version", func(p *KafkaPolicy) { p.Destinations[0].Rules[0].ApiVersion = &v }, ".api_version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok()
			tc.mod(p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRoleAPIKeys(t *testing.T) {
	p, _ := RoleAPIKeys("PRODUCE")
	c, _ := RoleAPIKeys("consume")
	if len(p) != 4 || len(c) != 12 {
		t.Fatalf("produce %v consume %v", p, c)
	}
	if _, ok := RoleAPIKeys("other"); ok {
		t.Fatal("unknown role accepted")
	}
}
