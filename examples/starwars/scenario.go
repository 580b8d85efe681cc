package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

var (
	landed   = want{200, "Ship landed"}
	exploded = want{200, "Panic: deathstar exploded"}
	denied   = want{403, "Access denied"}
	dropped  = want{}
)

const (
	landing     = "/v1/request-landing"
	exhaustPort = "/v1/exhaust-port"
)

// walkthrough is Cilium's Star Wars demo (FEATURES.md AT-POL-01), step
// by step. It returns an error only when the demo cannot go on; outcomes
// that differ from Cilium's are counted in d.failures.
func walkthrough(ctx context.Context, d *demo, n *node) error {
	st, err := n.settle(ctx, 0)
	if err != nil {
		return err
	}
	d.note("%s", describe(st))
	ds, ds2, tie, xw := n.deathstars[0], n.deathstars[1], n.tiefighter, n.xwing

	d.section("1. No policy: the deathstar lets every ship land")
	steps := []step{
		{"tiefighter (org=empire) requests landing", tie, ds, "POST", landing, landed},
		{"xwing (org=alliance) requests landing", xw, ds, "POST", landing, landed},
	}
	if err := d.requests(ctx, steps); err != nil {
		return err
	}

	d.section("2. L3/L4 policy rule1: only org=empire may connect to the deathstar, on TCP port 80")
	if st, err = d.apply(ctx, n, st, l34PolicyFile); err != nil {
		return err
	}
	steps = []step{
		{"tiefighter still lands", tie, ds, "POST", landing, landed},
		{"xwing's connection is dropped in the kernel: curl times out", xw, ds, "POST", landing, dropped},
		{"but L3/L4 cannot tell a landing request from an attack on the exhaust port", tie, ds, "PUT", exhaustPort, exploded},
	}
	if err := d.requests(ctx, steps); err != nil {
		return err
	}

	d.section("3. L7 policy: rule1 with an HTTP rule; the empire may only POST %s", landing)
	if _, err = d.apply(ctx, n, st, l7PolicyFile); err != nil {
		return err
	}
	steps = []step{
		{"the datapath now redirects tiefighter's connections to the node proxy, which allows the landing request", tie, ds, "POST", landing, landed},
		{"and answers anything else with 403", tie, ds, "PUT", exhaustPort, denied},
		{"the policy selects by labels: the second replica is protected too", tie, ds2, "PUT", exhaustPort, denied},
		{"xwing still cannot connect", xw, ds, "POST", landing, dropped},
	}
	if err := d.requests(ctx, steps); err != nil {
		return err
	}

	d.section("4. What the agent reports")
	return d.report(ctx, n)
}

// step is one request of the walkthrough and what it should get.
type step struct {
	say          string
	from, to     *ship
	method, path string
	want         want
}

// requests runs a section's requests.
func (d *demo) requests(ctx context.Context, steps []step) error {
	for _, s := range steps {
		d.say("%s", s.say)
		if err := d.request(ctx, s.from, s.to, s.method, s.path, s.want); err != nil {
			return err
		}
	}
	return nil
}

// apply copies a policy file into the watched directory, as rule1.yaml
// (the second copy replaces the first, as `kubectl apply` of the same
// policy name does), and waits until the node enforces it.
func (d *demo) apply(ctx context.Context, n *node, prev *api.Status, file string) (*api.Status, error) {
	r, err := d.run(ctx, "cp", filepath.Join(n.o.manifests, file), filepath.Join(n.config, policyTarget))
	if err != nil {
		return nil, err
	}
	if r.exit != 0 {
		return nil, fmt.Errorf("copying %s: exit %d", file, r.exit)
	}
	st, err := n.settle(ctx, prev.Generation, "rule1")
	if err != nil {
		return nil, err
	}
	d.note("%s", describe(st))
	return st, nil
}

// report shows `nodemesh status` and `nodemesh flows` and checks that
// they tell the story of step 3.
func (d *demo) report(ctx context.Context, n *node) error {
	cli := filepath.Join(n.o.bin, "nodemesh")
	d.say("the policy section: rule1 enforced on both deathstar replicas; the proxy acknowledged every resource")
	if _, err := d.run(ctx, cli, "status", "--socket", n.agentSock); err != nil {
		return err
	}
	st, err := n.status(ctx)
	if err != nil {
		return err
	}
	var ps []policy.PolicyStatus
	if st.Policy != nil {
		ps = st.Policy.Policies
	}
	if len(ps) != 1 || ps[0].Name != "rule1" || ps[0].State != policy.Enforced || ps[0].Selected != 2 {
		d.fail("rule1 Enforced selecting 2 endpoints, got %+v", ps)
	}

	// Flows reach the agent over the proxy's access log stream: wait for
	// the three judged requests of step 3 before showing them.
	var flows []flow.Flow
	for deadline := time.Now().Add(5 * time.Second); ; {
		if flows, err = fetchFlows(ctx, n.agentSock); err != nil {
			return err
		}
		if httpFlows(flows) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintln(d.out)
	d.say("Flows: the L7 requests the proxy judged and the datapath's drops and redirects, with the identities and workloads on both sides (Hubble-style)")
	if _, err := d.run(ctx, cli, "flows", "--socket", n.agentSock); err != nil {
		return err
	}
	d.checkFlows(flows, n)
	return nil
}

// httpFlows counts the proxy's HTTP flows (the datapath's redirects and
// drops are flows too).
func httpFlows(flows []flow.Flow) int {
	n := 0
	for _, f := range flows {
		if f.HTTP != nil {
			n++
		}
	}
	return n
}

func fetchFlows(ctx context.Context, sock string) ([]flow.Flow, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []flow.Flow
	err := api.FetchFlows(ctx, sock, api.FlowQuery{}, func(f flow.Flow) error {
		out = append(out, f)
		return nil
	})
	return out, err
}

// checkFlows expects the allowed landing and the two denied exhaust-port
// requests of step 3, from tiefighter, with identities resolved.
func (d *demo) checkFlows(flows []flow.Flow, n *node) {
	type key struct {
		verdict, method, path string
		status                int
		dst                   string
	}
	got := map[key]int{}
	for _, f := range flows {
		if f.HTTP == nil || f.Source.Workload != "default/"+n.tiefighter.name || f.Source.Identity == 0 || f.Destination.Identity == 0 {
			continue
		}
		got[key{f.Verdict, f.HTTP.Method, f.HTTP.Path, f.HTTP.Status, f.Destination.Workload}]++
	}
	for _, k := range []key{
		{flow.Forwarded, "POST", landing, 200, "default/" + n.deathstars[0].name},
		{flow.Dropped, "PUT", exhaustPort, 403, "default/" + n.deathstars[0].name},
		{flow.Dropped, "PUT", exhaustPort, 403, "default/" + n.deathstars[1].name},
	} {
		if got[k] != 1 {
			d.fail("one %s flow %s %s %d from default/tiefighter to %s with identities, found %d",
				k.verdict, k.method, k.path, k.status, k.dst, got[k])
		}
	}
}
