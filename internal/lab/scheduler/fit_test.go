package scheduler

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, ready bool, mutate ...func(*corev1.Node)) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "zone": "a"}},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}},
	}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func affinity(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
	}}
}

func TestPick(t *testing.T) {
	nodes := []*corev1.Node{node("node-1", true), node("node-2", true), node("node-3", false)}
	tainted := node("node-4", true, func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}}
	})
	for _, tc := range []struct {
		name  string
		spec  corev1.PodSpec
		nodes []*corev1.Node
		load  map[string]int
		want  string
		why   string
	}{
		{name: "least loaded", nodes: nodes, load: map[string]int{"node-1": 2, "node-2": 1}, want: "node-2"},
		{name: "ties by name", nodes: nodes, want: "node-1"},
		{name: "not ready never", nodes: nodes, load: map[string]int{"node-1": 5, "node-2": 5}, want: "node-1"},
		{name: "hostname selector", nodes: nodes, spec: corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/hostname": "node-2"}},
			load: map[string]int{"node-2": 9}, want: "node-2"},
		{name: "selector matches nothing", nodes: nodes, spec: corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/hostname": "node-9"}},
			why: "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) didn't match Pod's node affinity/selector."},
		{name: "affinity In", nodes: nodes, spec: corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{"node-2", "node-3"}}}})}, want: "node-2"},
		{name: "affinity terms are ORed", nodes: nodes, load: map[string]int{"node-1": 3}, spec: corev1.PodSpec{Affinity: affinity(
			corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}},
			corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}},
		)}, want: "node-2"},
		{name: "affinity NotIn", nodes: nodes, spec: corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"node-1"}}}})}, want: "node-2"},
		{name: "daemonset matchFields", nodes: nodes, spec: corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"node-2"}}}})}, want: "node-2"},
		{name: "empty term matches nothing", nodes: nodes, spec: corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorTerm{})},
			why: "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) didn't match Pod's node affinity/selector."},
		{name: "untolerated taint", nodes: []*corev1.Node{tainted}, why: "0/1 nodes are available: 1 node(s) had untolerated taint."},
		{name: "tolerated taint", nodes: []*corev1.Node{tainted}, spec: corev1.PodSpec{Tolerations: []corev1.Toleration{
			{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoSchedule}}}, want: "node-4"},
		{name: "cordoned", nodes: []*corev1.Node{node("node-1", true, func(n *corev1.Node) { n.Spec.Unschedulable = true })},
			why: "0/1 nodes are available: 1 node(s) were unschedulable."},
		{name: "no nodes", why: "0/0 nodes are available."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: tc.spec}
			got, why := pick(p, tc.nodes, tc.load)
			if got != tc.want || why != tc.why {
				t.Fatalf("pick = %q, %q; want %q, %q", got, why, tc.want, tc.why)
			}
			if got == "" && !strings.HasPrefix(why, "0/") {
				t.Fatalf("unschedulable without a reason")
			}
		})
	}
}
