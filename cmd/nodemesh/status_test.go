package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

func TestPrintStatusShowsPolicy(t *testing.T) {
	st := &api.Status{
		Generation: 3,
		Policy: &api.PolicyStatus{
			Identities: 3, Endpoints: 2, Rows: 7,
			DatapathError:   "map full",
			GatewayFromNode: "this node has no IPv4 ingress address",
			Policies: []policy.PolicyStatus{
				{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "rule1", State: policy.Enforced, Selected: 2},
				{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "broken", State: policy.EnforcedPrevious,
					Error: "specs[0].ingress[0].toPorts[0].rules.http[0].path: invalid RE2"},
				{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "mutual", State: policy.Pending,
					Reason: policy.ReasonWaitingForAuthentication, Message: "no authentication provider runs on this node"},
				// Enforced, with what it does not check.
				{Kind: "CiliumClusterwideNetworkPolicy", Name: "default-deny", State: policy.Enforced, Selected: 3,
					Reason: policy.ReasonDNSEnforcedAtL4, Message: "spec.egress[0].toPorts[0].rules.dns: DNS rules allowing every name"},
			},
		},
	}
	var b bytes.Buffer
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{
		"Network policy: 3 identities, 2 local endpoints, 7 datapath rows",
		"datapath error (previous tables in force): map full",
		"gateway traffic refused: this node has no IPv4 ingress address",
		"rule1", "Enforced ", "broken", "EnforcedPrevious", "rules.http[0].path: invalid RE2",
		"mutual", "Pending ", "WaitingForAuthentication: no authentication provider runs on this node",
		"default-deny", "DNSEnforcedAtL4: spec.egress[0].toPorts[0].rules.dns: DNS rules allowing every name",
		"(none has connected)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

func TestPrintStatusShowsEnvoyConfigs(t *testing.T) {
	st := &api.Status{EnvoyConfigs: []api.EnvoyConfigStatus{
		{Kind: "CiliumClusterwideEnvoyConfig", Name: "envoy-prometheus-metrics-listener", Reason: "Invalid",
			Message: `Cluster "envoy-admin" is referred to but is not among the config's resources`},
		{Kind: "CiliumEnvoyConfig", Namespace: "default", Name: "envoy-lb-listener", Valid: true, Reason: "Accepted", Pending: true},
	}}
	var b bytes.Buffer
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{
		"CiliumClusterwideEnvoyConfig  -          envoy-prometheus-metrics-listener  no     Invalid   Cluster \"envoy-admin\" is referred to",
		"CiliumEnvoyConfig             default    envoy-lb-listener                  yes    Accepted  waiting for the proxies",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}
