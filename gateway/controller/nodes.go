package controller

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// nodeVerdict is what the nodes' reports say about one Gateway.
type nodeVerdict struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

// nodeReport is one live node's report, indexed by Gateway.
type nodeReport struct {
	node     string
	gateways map[input.Key]*v1alpha1.GatewayProgramming
	// cannotRedirect is why the node cannot steer Services' traffic.
	cannotRedirect string
}

// liveReports indexes the reports of agents of our controller whose
// heartbeat is recent, sorted by node name.
func liveReports(all []*v1alpha1.NodeProxyStatus, controller string, now time.Time, staleAfter time.Duration) []nodeReport {
	var out []nodeReport
	for _, r := range all {
		if r.Status.ControllerName != "" && r.Status.ControllerName != controller {
			continue
		}
		if staleAfter > 0 && now.Sub(r.Status.HeartbeatTime.Time) > staleAfter {
			continue
		}
		nr := nodeReport{node: r.Name, gateways: make(map[input.Key]*v1alpha1.GatewayProgramming, len(r.Status.Gateways)),
			cannotRedirect: r.Status.CannotRedirect}
		for i := range r.Status.Gateways {
			g := &r.Status.Gateways[i]
			nr.gateways[input.Key{Namespace: g.Namespace, Name: g.Name}] = g
		}
		out = append(out, nr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].node < out[j].node })
	return out
}

// cannotRedirect names the live nodes that report they cannot send a
// Service's traffic to their proxy, with why, or "" when none does.
// Routes with Service parents are refused while one such node runs: its
// clients would reach the Services around the routes, so the routes would
// not hold for every client as Accepted says (fail closed, as a
// CiliumEnvoyConfig with services is refused on such a node).
func cannotRedirect(reports []nodeReport) string {
	var nodes []string
	for _, r := range reports {
		if r.cannotRedirect != "" {
			nodes = append(nodes, fmt.Sprintf("node %s: %s", r.node, r.cannotRedirect))
		}
	}
	return truncate(strings.Join(nodes, "; "))
}

// verdictFor aggregates the nodes' verdicts on one Gateway at generation
// gen: programmed only when every live node reports it programmed at that
// generation; a rejection by any node's proxies wins, with the proxy's
// message, because that node serves an older configuration.
func verdictFor(key input.Key, gen int64, reports []nodeReport) nodeVerdict {
	if len(reports) == 0 {
		return nodeVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "no node agent has reported the state of its proxies yet"}
	}
	var waiting []string
	var rejected []string
	for _, r := range reports {
		gp := r.gateways[key]
		switch {
		case gp == nil || gp.ObservedGeneration < gen:
			waiting = append(waiting, r.node+" (has not translated this generation yet)")
		case gp.Status == metav1.ConditionTrue:
		case gp.Reason == string(gwv1.GatewayReasonInvalid):
			rejected = append(rejected, fmt.Sprintf("node %s: %s", r.node, gp.Message))
		default:
			waiting = append(waiting, fmt.Sprintf("%s (%s)", r.node, gp.Message))
		}
	}
	switch {
	case len(rejected) > 0:
		return nodeVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonInvalid), truncate(strings.Join(rejected, "; "))}
	case len(waiting) > 0:
		return nodeVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonPending), truncate("waiting for nodes: " + strings.Join(waiting, "; "))}
	}
	return nodeVerdict{metav1.ConditionTrue, string(gwv1.GatewayReasonProgrammed), fmt.Sprintf("programmed on %d node(s)", len(reports))}
}

// maxMessage keeps condition messages under the API's 32768-byte limit
// however many nodes report.
const maxMessage = 8192

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// applyVerdict lowers the Gateway's and its listeners' Programmed
// conditions to what the nodes report. A condition translation already set
// to False keeps its reason: nodes cannot program an invalid Gateway.
func applyVerdict(st *gwv1.GatewayStatus, gen int64, v nodeVerdict) {
	lower := func(conds []metav1.Condition, reasonTrue string) {
		c := meta.FindStatusCondition(conds, string(gwv1.GatewayConditionProgrammed))
		if c == nil || c.Status != metav1.ConditionTrue {
			return
		}
		c.Status, c.Reason, c.Message, c.ObservedGeneration = v.status, v.reason, v.message, gen
		if v.status == metav1.ConditionTrue {
			c.Reason = reasonTrue
		}
	}
	lower(st.Conditions, string(gwv1.GatewayReasonProgrammed))
	for i := range st.Listeners {
		lower(st.Listeners[i].Conditions, string(gwv1.ListenerReasonProgrammed))
	}
}
