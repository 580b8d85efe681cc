package main

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// paperFleet is the demo's fleet with the bed's addresses but no
// namespaces behind them.
func paperFleet() []*ship {
	var ws []*testbed.Workload
	for i := 0; i < 4; i++ {
		ws = append(ws, &testbed.Workload{Namespace: &testbed.Namespace{Name: "w"}, Index: i, IPv4: testbed.WorkloadIPv4(i), IPv6: testbed.WorkloadIPv6(i)})
	}
	ds, tie, xw := fleet(ws)
	return append(ds, tie, xw)
}

// compile decodes the generated Pods plus the given shipped policy files
// and compiles them the way the agent does in standalone mode.
func compile(t *testing.T, files ...string) *policy.Result {
	t.Helper()
	objs, err := input.Decode(appFile, []byte(podsYAML(paperFleet())))
	if err != nil {
		t.Fatalf("decoding the generated Pods: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		more, err := input.Decode(f, data)
		if err != nil {
			t.Fatalf("decoding %s: %v", f, err)
		}
		objs = append(objs, more...)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policy.New(policy.Options{Listeners: policy.Listeners{Address: "0.0.0.0",
		IngressHTTP: 15101, EgressHTTP: 15102, IngressKafka: 15103, EgressKafka: 15104, OriginalSource: true}})
	if err != nil {
		t.Fatal(err)
	}
	return c.Compile(policy.FromSnapshot(snap, []netip.Addr{testbed.NodeIPv4, testbed.NodeIPv6}))
}

// TestShippedPolicies keeps the demo's YAML true to its story: the Pods
// are four endpoints with three identities, rule1 selects both deathstar
// replicas, the L3/L4 version allows empire ships in the kernel and the
// L7 version sends them to the proxy with one HTTP rule.
func TestShippedPolicies(t *testing.T) {
	verdicts := func(r *policy.Result) []string {
		var out []string
		for _, e := range r.Datapath.Entries {
			out = append(out, e.Verdict.String())
		}
		return out
	}
	none := compile(t)
	if len(none.Local) != 4 || len(none.Datapath.Entries) != 0 || len(none.Policies) != 0 {
		t.Fatalf("without policy: %d endpoints, %d rows, %d policies; want 4, 0, 0", len(none.Local), len(none.Datapath.Entries), len(none.Policies))
	}

	for _, tc := range []struct {
		file     string
		verdicts []string
		l7       bool
	}{
		{l34PolicyFile, []string{model.Allow.String(), model.Allow.String()}, false},
		{l7PolicyFile, []string{model.Redirect.String(), model.Redirect.String()}, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := compile(t, tc.file)
			want := []policy.PolicyStatus{{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "rule1", State: policy.Enforced, Selected: 2, Proxied: tc.l7}}
			if diff := cmp.Diff(want, r.Policies); diff != "" {
				t.Fatalf("policy status (-want +got):\n%s", diff)
			}
			// Rows: the deathstar identity from the deathstar and the
			// tiefighter identities (org=empire), port 80/TCP.
			if diff := cmp.Diff(tc.verdicts, verdicts(r)); diff != "" {
				t.Errorf("datapath verdicts (-want +got):\n%s", diff)
			}
			for _, e := range r.Datapath.Entries {
				if e.Port != 80 || e.Proto != model.ProtoTCP || e.Direction != model.Ingress {
					t.Errorf("row %+v: want ingress TCP port 80", e)
				}
			}
			if (r.L7 != nil) != tc.l7 {
				t.Errorf("L7 policy present = %v, want %v", r.L7 != nil, tc.l7)
			}
		})
	}
}

// TestCommandLinesPaste checks that every printed command is what a shell
// would run: bash splits each rendered line back into the same argv.
func TestCommandLinesPaste(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("needs bash")
	}
	for _, argv := range [][]string{
		{"ip", "netns", "exec", "nmtb-1-1-w2", "curl", "-sS", "-w", `HTTP %{http_code}\n`, "-X", "PUT", "http://10.248.0.1/v1/exhaust-port"},
		{"cp", "a b", "it's", "$HOME", "", "*"},
	} {
		line := cmdline(argv)
		got, err := exec.Command("bash", "-c", "f() { for a in \"$@\"; do printf '%s\\0' \"$a\"; done; }; f "+line).Output()
		if err != nil {
			t.Fatalf("bash on %s: %v", line, err)
		}
		if diff := cmp.Diff(argv, strings.Split(strings.TrimSuffix(string(got), "\x00"), "\x00")); diff != "" {
			t.Errorf("%s splits differently (-want +got):\n%s", line, diff)
		}
	}
}
