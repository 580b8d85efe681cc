package scheduler

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/klog/v2"
)

// Reasons a node does not fit a Pod, as counted in the Unschedulable
// message.
const (
	notReady   = "node(s) were not ready"
	cordoned   = "node(s) were unschedulable"
	noMatch    = "node(s) didn't match Pod's node affinity/selector"
	taintedOut = "node(s) had untolerated taint"
)

// pick chooses the node for p among nodes, given how many Pods each node
// runs. When no node fits it returns "" and the Unschedulable message.
func pick(p *corev1.Pod, nodes []*corev1.Node, load map[string]int) (string, string) {
	why := map[string]int{}
	var fit []string
	for _, n := range nodes {
		if r := reject(p, n); r != "" {
			why[r]++
			continue
		}
		fit = append(fit, n.Name)
	}
	if len(fit) == 0 {
		var parts []string
		for r, k := range why {
			parts = append(parts, fmt.Sprintf("%d %s", k, r))
		}
		sort.Strings(parts)
		msg := fmt.Sprintf("0/%d nodes are available", len(nodes))
		if len(parts) > 0 {
			msg += ": " + strings.Join(parts, ", ")
		}
		return "", msg + "."
	}
	sort.Slice(fit, func(i, j int) bool {
		if load[fit[i]] != load[fit[j]] {
			return load[fit[i]] < load[fit[j]]
		}
		return fit[i] < fit[j]
	})
	return fit[0], ""
}

// reject says why n does not fit p, or "" when it does.
func reject(p *corev1.Pod, n *corev1.Node) string {
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	switch {
	case !ready:
		return notReady
	case n.Spec.Unschedulable:
		return cordoned
	case !labels.SelectorFromSet(p.Spec.NodeSelector).Matches(labels.Set(n.Labels)):
		return noMatch
	case !affinityMatches(p, n):
		return noMatch
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		tolerated := false
		for j := range p.Spec.Tolerations {
			if p.Spec.Tolerations[j].ToleratesTaint(klog.Background(), t, true) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return taintedOut
		}
	}
	return ""
}

// affinityMatches evaluates required node affinity: the terms are ORed,
// the requirements of a term ANDed; a term without requirements matches
// nothing, and a requirement that cannot be parsed matches nothing (as
// in kube-scheduler).
func affinityMatches(p *corev1.Pod, n *corev1.Node) bool {
	a := p.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if termMatches(term, n) {
			return true
		}
	}
	return false
}

func termMatches(term corev1.NodeSelectorTerm, n *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for _, r := range term.MatchExpressions {
		if !requirementMatches(r, labels.Set(n.Labels)) {
			return false
		}
	}
	for _, r := range term.MatchFields {
		if r.Key != "metadata.name" || !requirementMatches(r, labels.Set{"metadata.name": n.Name}) {
			return false
		}
	}
	return true
}

func requirementMatches(r corev1.NodeSelectorRequirement, set labels.Set) bool {
	op, ok := map[corev1.NodeSelectorOperator]selection.Operator{
		corev1.NodeSelectorOpIn: selection.In, corev1.NodeSelectorOpNotIn: selection.NotIn,
		corev1.NodeSelectorOpExists: selection.Exists, corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
		corev1.NodeSelectorOpGt: selection.GreaterThan, corev1.NodeSelectorOpLt: selection.LessThan,
	}[r.Operator]
	if !ok {
		return false
	}
	req, err := labels.NewRequirement(r.Key, op, r.Values)
	if err != nil {
		return false
	}
	return req.Matches(set)
}
