package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// settleTimeout bounds how long a configuration change may take to be in
// force on the node.
const settleTimeout = 20 * time.Second

// settleGap separates the two reads that must agree.
const settleGap = 200 * time.Millisecond

// settle waits until the agent applied a configuration newer than
// generation `after` and the node enforces it: the proxy acknowledged
// everything published, the datapath holds the policy rows, exactly the
// named policies are enforced and every ship is an endpoint. It reads
// only what `nodemesh status` shows (the agent's local API).
//
// The agent reports a new generation a moment before it writes the
// datapath, so a state only counts once two reads settleGap apart agree.
func (n *node) settle(ctx context.Context, after uint64, policies ...string) (*api.Status, error) {
	deadline := time.Now().Add(settleTimeout)
	var prev uint64
	lastProblem := "no answer from the agent yet"
	for {
		if err := n.exited(); err != nil {
			return nil, err
		}
		st, err := n.status(ctx)
		switch {
		case err != nil:
			lastProblem = err.Error()
			prev = 0
		default:
			if p := n.unsettled(st, after, policies); p != "" {
				lastProblem, prev = p, 0
			} else if prev == st.Generation {
				return st, nil
			} else {
				prev = st.Generation
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the node did not apply the configuration within %s: %s (logs: %s, %s)",
				settleTimeout, lastProblem, n.agent.log, n.proxy.log)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(settleGap):
		}
	}
}

func (n *node) status(ctx context.Context) (*api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return api.FetchStatus(ctx, n.agentSock)
}

// unsettled says what is still missing, "" when nothing is.
func (n *node) unsettled(st *api.Status, after uint64, policies []string) string {
	p := st.Policy
	switch {
	case st.Generation <= after:
		return "the agent has not read the change yet"
	case len(st.ConfigErrors) > 0:
		return "input error: " + strings.Join(st.ConfigErrors, "; ")
	case st.PublishError != "":
		return "publish error: " + st.PublishError
	case p == nil:
		return "the agent runs without network policy"
	case p.DatapathError != "":
		return "datapath error: " + p.DatapathError
	case p.ProxyError != "":
		return p.ProxyError
	case p.DatapathPending:
		return "the datapath waits for the proxy to acknowledge its listeners"
	case p.Endpoints != len(n.ships()):
		return fmt.Sprintf("%d of %d ships are endpoints", p.Endpoints, len(n.ships()))
	}
	var enforced []string
	for _, ps := range p.Policies {
		if ps.State != policy.Enforced {
			return fmt.Sprintf("policy %s is %s: %s", ps.Name, ps.State, ps.Error)
		}
		enforced = append(enforced, ps.Name)
	}
	if !slices.Equal(enforced, policies) {
		return fmt.Sprintf("enforced policies %v, want %v", enforced, policies)
	}
	for _, px := range st.Proxies {
		if px.Connected && px.AckedAll(st.Versions) {
			return ""
		}
	}
	return "the proxy has not acknowledged the configuration"
}

// describe summarises a settled status in one line.
func describe(st *api.Status) string {
	p := st.Policy
	parts := []string{fmt.Sprintf("generation %d", st.Generation), fmt.Sprintf("%d endpoints, %d identities", p.Endpoints, p.Identities)}
	for _, ps := range p.Policies {
		parts = append(parts, fmt.Sprintf("%s %s %s selecting %d", ps.Kind, ps.Name, ps.State, ps.Selected))
	}
	parts = append(parts, fmt.Sprintf("%d datapath rows", p.Rows), "proxy acknowledged")
	return "agent: " + strings.Join(parts, "; ")
}
