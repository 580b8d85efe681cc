package ir

import (
	"errors"
	"strings"
	"testing"
)

func validPolicy() *Config {
	return &Config{Policy: &Policy{
		Listeners: []*PolicyListener{
			{Name: "policy/ingress/http", Direction: PolicyIngress, Protocol: L7HTTP, Address: "0.0.0.0", Port: 15101},
			{Name: "policy/egress/kafka", Direction: PolicyEgress, Protocol: L7Kafka, Address: "0.0.0.0", Port: 15104},
		},
		UpstreamMark:    0xA00,
		AccessLogSocket: "/run/nodemesh/als.sock",
		HTTP: []*HTTPPolicy{{
			Name: "cnp/default/rule1/ingress/0/port/80/http/0", Direction: PolicyIngress, Port: 80,
			Endpoints: []string{"10.0.0.1/32"},
			Peers:     PeerSet{Terms: []AddressTerm{{Prefix: "10.0.0.2/32"}, {Prefix: "0.0.0.0/0", Except: []string{"10.0.0.0/24"}}}},
			Request: &HTTPRequestRule{Method: "POST", Path: "/v1/request-landing", Headers: []HeaderRequirement{{Name: "X-Ship", Present: true}},
				HeaderActions: []HeaderAction{{Name: "X-Fleet", Value: "empire", Mismatch: MismatchReplace}}},
		}},
		Kafka: []*KafkaPolicy{{
			Name: "cnp/default/k/egress/0/port/9092/kafka/0", Direction: PolicyEgress, Port: 9092,
			Endpoints: []string{"10.0.0.3/32"}, Peers: PeerSet{Any: true},
			Request: &KafkaRequestRule{APIKeys: []int16{1, 2, 3}, Topic: "events", HasAPIVersion: true, APIVersion: 4},
		}},
	}}
}

func TestPolicyValidates(t *testing.T) {
	if err := validPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Policy)
		want   string
	}{
		{"listener name", func(p *Policy) { p.Listeners[0].Name = "x" }, `policy.listeners[0]: name: "x", want "policy/ingress/http"`},
		{"listener port", func(p *Policy) { p.Listeners[0].Port = 0 }, `policy listener "policy/ingress/http": port: 0 out of range`},
		{"listener bind clash", func(p *Policy) { p.Listeners[1].Port = 15101 }, `0.0.0.0:15101 already bound by listener "policy/ingress/http"`},
		{"no listener", func(p *Policy) { p.HTTP[0].Direction = PolicyEgress }, `HTTP policy "cnp/default/rule1/ingress/0/port/80/http/0": direction: no listener "policy/egress/http"`},
		{"bad regex", func(p *Policy) { p.HTTP[0].Request.Path = "/v1/(" }, `request.path: invalid RE2 regular expression`},
		{"bad header", func(p *Policy) { p.HTTP[0].Request.Headers[0].Name = "X Ship" }, `request.headers[0].name: invalid header name "X Ship"`},
		{"action header", func(p *Policy) { p.HTTP[0].Request.HeaderActions[0].Name = "Host" }, `request.headerActions[0].name: invalid header name "Host"`},
		{"action value", func(p *Policy) { p.HTTP[0].Request.HeaderActions[0].Value = "a\r\nb" }, `request.headerActions[0].value: control characters`},
		{"action", func(p *Policy) { p.HTTP[0].Request.HeaderActions[0].Mismatch = "FAIL" }, `request.headerActions[0].mismatch: unknown action "FAIL"`},
		{"no endpoints", func(p *Policy) { p.HTTP[0].Endpoints = nil }, `endpoints: empty`},
		{"unmasked endpoint", func(p *Policy) { p.HTTP[0].Endpoints = []string{"10.0.0.1/24"} }, `endpoints[0]: "10.0.0.1/24" is not a masked prefix`},
		{"peers both", func(p *Policy) { p.HTTP[0].Peers.Any = true }, `peers: exactly one of any and terms`},
		{"peers none", func(p *Policy) { p.Kafka[0].Peers.Any = false }, `peers: exactly one of any and terms`},
		{"except outside", func(p *Policy) { p.HTTP[0].Peers.Terms[0].Except = []string{"10.0.0.3/32"} }, `peers.terms[0].except[0]: "10.0.0.3/32" is not a masked prefix inside 10.0.0.2/32`},
		{"duplicate", func(p *Policy) { p.HTTP = append(p.HTTP, p.HTTP[0]) }, `HTTP policy "cnp/default/rule1/ingress/0/port/80/http/0": name: duplicate`},
		{"kafka topic", func(p *Policy) { p.Kafka[0].Request.Topic = "a/b" }, `request.topic: invalid topic "a/b"`},
		{"kafka key", func(p *Policy) { p.Kafka[0].Request.APIKeys[0] = -1 }, `request.apiKeys[0]: -1 is negative`},
		{"kafka version", func(p *Policy) { p.Kafka[0].Request.HasAPIVersion = false }, `request.apiVersion: set without hasAPIVersion`},
		{"kafka port", func(p *Policy) { p.Kafka[0].Port = 70000 }, `port: 70000 out of range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validPolicy()
			tc.modify(c.Policy)
			err := c.Validate()
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestPolicyListenerClashesWithGatewayListener(t *testing.T) {
	c := validPolicy()
	c.Listeners = []*Listener{{Name: "gw", Address: "0.0.0.0", Port: 15101, Chains: []*HTTPChain{{Name: "c", Routes: &RouteTable{Name: "rt"}}}}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `0.0.0.0:15101 already bound by listener "gw"`) {
		t.Fatalf("got %v", err)
	}
}

func TestValidKafkaTopic(t *testing.T) {
	for s, want := range map[string]bool{"events": true, "a.b_c-D9": true, "": false, "a b": false, strings.Repeat("a", 255): true, strings.Repeat("a", 256): false} {
		if ValidKafkaTopic(s) != want {
			t.Errorf("ValidKafkaTopic(%q) != %v", s, want)
		}
	}
}
