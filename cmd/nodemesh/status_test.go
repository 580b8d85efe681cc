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
			DatapathError: "map full",
			Policies: []policy.PolicyStatus{
				{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "rule1", State: policy.Enforced, Selected: 2},
				{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "broken", State: policy.EnforcedPrevious,
					Error: "specs[0].ingress[0].toPorts[0].rules.http[0].path: invalid RE2"},
				{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "mutual", State: policy.Pending,
					Reason: policy.ReasonWaitingForAuthentication, Message: "no authentication provider runs on this node"},
			},
		},
	}
	var b bytes.Buffer
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{
		"Network policy: 3 identities, 2 local endpoints, 7 datapath rows",
		"datapath error (previous tables in force): map full",
		"rule1", "Enforced ", "broken", "EnforcedPrevious", "rules.http[0].path: invalid RE2",
		"mutual", "Pending ", "WaitingForAuthentication: no authentication provider runs on this node",
		"(none has connected)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}
