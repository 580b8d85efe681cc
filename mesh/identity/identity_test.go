package identity

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/datapath/model"
)

func k8s(key, value string) Label { return Label{Source: SourceK8s, Key: key, Value: value} }

func TestDefaultFilter(t *testing.T) {
	f := DefaultFilter()
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"app", true},
		{"org", true},
		{"io.kubernetes.pod.namespace", true},
		{"io.cilium.k8s.namespace.labels.team", true},
		{"io.cilium.k8s.policy.serviceaccount", true},
		{"io.cilium.k8s.policy.cluster", true},
		{"app.kubernetes.io/name", true},
		{"io.kubernetes.container.name", false},
		{"kubernetes.io/hostname", false},
		{"statefulset.kubernetes.io/pod-name", false},
		{"apps.kubernetes.io/pod-index", false},
		{"batch.kubernetes.io/job-completion-index", false},
		{"failure-domain.beta.kubernetes.io/zone", false},
		{"k8s.io/foo", false},
		{"pod-template-hash", false},
		{"pod-template-generation", false},
		{"controller-revision-hash", false},
		{"annotation.foo", false},
		{"controller-uid", false},
		{"etcd_node", false},
		{"my-pod-template-hash", true}, // patterns are anchored at the start
	} {
		if got := f.Relevant(k8s(tc.key, "x")); got != tc.want {
			t.Errorf("Relevant(%s) = %v, want %v", tc.key, got, tc.want)
		}
	}
	if !f.Relevant(Label{Source: SourceReserved, Key: "host"}) {
		t.Error("reserved labels must always be relevant")
	}
}

func TestCustomFilter(t *testing.T) {
	// An inclusive pattern switches to allow-list mode: only team counts,
	// plus what Cilium always keeps.
	f, err := NewFilter([]string{"team"})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		"team": true, "team-lead": true, "env": false, "app": false,
		"io.kubernetes.pod.namespace": true, "io.cilium.k8s.policy.cluster": true,
		"io.cilium.k8s.policy.serviceaccount": true, "app.kubernetes.io/name": true,
		"io.cilium.k8s.namespace.labels.x": true,
	} {
		if got := f.Relevant(k8s(key, "v")); got != want {
			t.Errorf("labels=team: Relevant(%s) = %v, want %v", key, got, want)
		}
	}
	// An exact-key pattern.
	f, err = NewFilter([]string{`^kind$`})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Relevant(k8s("kind", "v")) || f.Relevant(k8s("kinder", "v")) {
		t.Error("^kind$ must match the key kind only")
	}
	// Exclusions keep default mode; a source restricts the pattern.
	f, err = NewFilter([]string{"!env", "container:!team"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Relevant(k8s("env", "prod")) || !f.Relevant(k8s("app", "web")) || !f.Relevant(k8s("team", "a")) {
		t.Error("!env must drop env only; container:!team must not apply to k8s labels")
	}
	if f.Relevant(Label{Source: "container", Key: "team"}) {
		t.Error("container:!team must drop container:team")
	}
	// The service account can be opted out as in Cilium 1.18.
	f, err = NewFilter([]string{`!io\.cilium\.k8s\.policy\.serviceaccount`})
	if err != nil {
		t.Fatal(err)
	}
	if f.Relevant(k8s("io.cilium.k8s.policy.serviceaccount", "sa")) {
		t.Error("the service account label must be excludable")
	}
	if _, err := NewFilter([]string{"k8s:!(["}); err == nil || !strings.Contains(err.Error(), `"k8s:!(["`) {
		t.Errorf("invalid pattern: got %v, want an error naming it", err)
	}
	if _, err := NewFilter([]string{"k8s:!"}); err == nil {
		t.Error("empty pattern must be rejected")
	}
}

func TestAllocatorSticky(t *testing.T) {
	a := newAllocator(10, 13)
	got, failed := a.sync([]string{"b", "a"})
	if len(failed) > 0 || got["a"] != 10 || got["b"] != 11 {
		t.Fatalf("first sync: %v %v", got, failed)
	}
	// a keeps its number; b is released; c and d are new.
	got, _ = a.sync([]string{"a", "d", "c"})
	if got["a"] != 10 || got["c"] != 12 || got["d"] != 13 {
		t.Fatalf("second sync: %v", got)
	}
	// 11 was released; it is only reused after wrapping.
	got, failed = a.sync([]string{"a", "c", "d", "e"})
	if got["e"] != 11 || len(failed) > 0 {
		t.Fatalf("wrap: %v %v", got, failed)
	}
	got, failed = a.sync([]string{"a", "c", "d", "e", "f"})
	if len(failed) != 1 || failed[0] != "f" {
		t.Fatalf("exhaustion: %v %v", got, failed)
	}
	if _, ok := got["f"]; ok {
		t.Fatal("f got a number from a full range")
	}
}

func pod(ns, name string, labels map[string]string, ips ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return p
}

func TestResolveStarWars(t *testing.T) {
	m := NewManager()
	in := Input{
		Pods: []*corev1.Pod{
			pod("default", "deathstar-1", map[string]string{"org": "empire", "class": "deathstar", "pod-template-hash": "a1"}, "10.0.0.1", "fd00::1"),
			pod("default", "deathstar-2", map[string]string{"org": "empire", "class": "deathstar", "pod-template-hash": "b2"}, "10.0.0.2"),
			pod("default", "tiefighter", map[string]string{"org": "empire", "class": "tiefighter"}, "10.0.0.3"),
			pod("default", "xwing", map[string]string{"org": "alliance", "class": "xwing"}, "10.0.0.4"),
			pod("default", "pending", map[string]string{"org": "alliance"}),
		},
		Namespaces: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"team": "rebels"}}}},
		HostIPs:    []netip.Addr{netip.MustParseAddr("10.0.0.254")},
	}
	st := m.Resolve(in)
	if len(st.Problems) > 0 {
		t.Fatalf("problems: %v", st.Problems)
	}
	ids := map[string]model.Identity{}
	for _, ep := range st.Endpoints {
		ids[ep.Pod.Name] = ep.Identity
	}
	// New label sets get numbers in the order of their text (class sorts
	// first): deathstar < tiefighter < xwing.
	want := map[string]model.Identity{"deathstar-1": 256, "deathstar-2": 256, "tiefighter": 257, "xwing": 258}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Fatalf("identities (-want +got):\n%s", diff)
	}
	ls, _ := st.Labels(256)
	wantLabels := "k8s:class=deathstar,k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default," +
		"k8s:io.cilium.k8s.namespace.labels.team=rebels,k8s:io.cilium.k8s.policy.cluster=default," +
		"k8s:io.cilium.k8s.policy.serviceaccount=default,k8s:io.kubernetes.pod.namespace=default,k8s:org=empire"
	if ls.String() != wantLabels {
		t.Errorf("labels of 256:\n got %s\nwant %s", ls, wantLabels)
	}
	if _, ok := st.Labels(model.IdentityHost); !ok {
		t.Error("reserved identities must always be listed")
	}
	var cache []string
	for _, e := range st.IPCache {
		cache = append(cache, e.Prefix.String()+"="+e.Identity.String())
	}
	wantCache := []string{"10.0.0.1/32=256", "10.0.0.2/32=256", "10.0.0.3/32=257", "10.0.0.4/32=258", "10.0.0.254/32=reserved:host", "fd00::1/128=256"}
	if diff := cmp.Diff(wantCache, cache); diff != "" {
		t.Errorf("ipcache (-want +got):\n%s", diff)
	}

	// Identities are sticky: removing xwing and adding a new label set
	// keeps the others' numbers and does not reuse 258.
	in.Pods = append(in.Pods[:3:3], pod("default", "ywing", map[string]string{"org": "alliance", "class": "ywing"}, "10.0.0.5"))
	st = m.Resolve(in)
	for _, ep := range st.Endpoints {
		if w, ok := want[ep.Pod.Name]; ok && ep.Identity != w {
			t.Errorf("%s changed identity to %d", ep.Pod.Name, ep.Identity)
		}
		if ep.Pod.Name == "ywing" && ep.Identity != 259 {
			t.Errorf("ywing got %d, want 259 (258 was just released)", ep.Identity)
		}
	}
}

func TestResolveProblems(t *testing.T) {
	hostNet := pod("default", "hostnet", nil, "10.0.0.9")
	hostNet.Spec.HostNetwork = true
	done := pod("default", "done", nil, "10.0.0.8")
	done.Status.Phase = corev1.PodSucceeded
	st := NewManager().Resolve(Input{
		Pods: []*corev1.Pod{
			pod("a", "first", nil, "10.0.0.1"),
			pod("b", "second", nil, "10.0.0.1", "not-an-ip", "10.0.0.2"),
			pod("c", "node", nil, "10.0.0.254"),
			hostNet, done,
		},
		HostIPs: []netip.Addr{netip.MustParseAddr("10.0.0.254")},
	})
	want := []string{
		`Pod b/second: status.podIPs[1]: "not-an-ip" is not an IP address; ignored`,
		"Pod b/second: address 10.0.0.1 already belongs to Pod a/first; ignored",
		"Pod c/node: address 10.0.0.254 already belongs to the node; ignored",
	}
	if diff := cmp.Diff(want, st.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	var names []string
	for _, ep := range st.Endpoints {
		names = append(names, ep.Pod.String()+"="+ep.IPs[0].String())
	}
	if diff := cmp.Diff([]string{"a/first=10.0.0.1", "b/second=10.0.0.2"}, names); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
}

func TestResolveCIDRs(t *testing.T) {
	st := NewManager().Resolve(Input{
		Pods: []*corev1.Pod{pod("a", "p", nil, "10.1.2.3")},
		CIDRs: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"),
			netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.1.2.3/32"), // a Pod's address: not a CIDR identity
			netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::ffff:192.168.0.0/112"),
		},
	})
	got := map[string]string{}
	for _, e := range st.IPCache {
		ls, _ := st.Labels(e.Identity)
		got[e.Prefix.String()] = e.Identity.String() + " " + ls.String()
	}
	want := map[string]string{
		"10.1.2.3/32":    "256 " + mustLabels(t, st, 256),
		"10.0.0.0/8":     "16777216 cidr:10.0.0.0/8,reserved:world",
		"10.1.0.0/16":    "16777217 cidr:10.0.0.0/8,cidr:10.1.0.0/16,reserved:world",
		"192.168.0.0/16": "16777218 cidr:192.168.0.0/16,reserved:world",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ipcache (-want +got):\n%s", diff)
	}
}

func mustLabels(t *testing.T, st *State, id model.Identity) string {
	ls, ok := st.Labels(id)
	if !ok {
		t.Fatalf("no identity %d", id)
	}
	return ls.String()
}

func TestParseSelectorKey(t *testing.T) {
	for in, want := range map[string][2]string{
		"app":                                 {"any", "app"},
		"k8s:app":                             {"k8s", "app"},
		"any:app":                             {"any", "app"},
		"reserved:host":                       {"reserved", "host"},
		"k8s:io.kubernetes.pod.namespace":     {"k8s", "io.kubernetes.pod.namespace"},
		"example.com:8080/x":                  {"any", "example.com:8080/x"},
		"io.cilium.k8s.policy.serviceaccount": {"any", "io.cilium.k8s.policy.serviceaccount"},
	} {
		s, k := ParseSelectorKey(in)
		if s != want[0] || k != want[1] {
			t.Errorf("ParseSelectorKey(%q) = %q, %q; want %q, %q", in, s, k, want[0], want[1])
		}
	}
}

// numberedBy is an Allocator that gives each set a fixed number, or fails
// it, and records what it was asked.
type numberedBy struct {
	numbers map[string]model.Identity
	asked   [][]Labels
}

func (n *numberedBy) Allocate(sets []Labels) (map[string]model.Identity, map[string]error) {
	n.asked = append(n.asked, sets)
	got, failed := map[string]model.Identity{}, map[string]error{}
	for _, s := range sets {
		if id, ok := n.numbers[s.String()]; ok {
			got[s.String()] = id
		} else {
			failed[s.String()] = errors.New("no number for you")
		}
	}
	return got, failed
}

// TestManagerAsksItsAllocator: with WithAllocator the Manager numbers
// workloads through it, asks once per label set however many Pods share
// it, and reports a set it could not number (its Pods get no endpoint).
func TestManagerAsksItsAllocator(t *testing.T) {
	pod := func(name, app, ip string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"app": app}},
			Status: corev1.PodStatus{PodIP: ip}}
	}
	m0 := NewManager()
	web := m0.PodLabels(pod("a", "web", ""), nil).String()
	alloc := &numberedBy{numbers: map[string]model.Identity{web: 4242}}
	m := NewManager(WithAllocator(alloc))
	st := m.Resolve(Input{Pods: []*corev1.Pod{pod("a", "web", "10.0.0.1"), pod("b", "web", "10.0.0.2"), pod("c", "db", "10.0.0.3")}})
	if len(alloc.asked) != 1 || len(alloc.asked[0]) != 2 {
		t.Fatalf("asked %v, want one call with two sets", alloc.asked)
	}
	if len(st.Endpoints) != 2 || st.Endpoints[0].Identity != 4242 || st.Endpoints[1].Identity != 4242 {
		t.Fatalf("endpoints %+v", st.Endpoints)
	}
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "app=db") || !strings.Contains(st.Problems[0], "no number for you") {
		t.Fatalf("problems %v", st.Problems)
	}
}

// TestResolveRemoteNodes: other nodes' addresses map to the reserved
// remote-node identity; this node's own address stays host, a Pod's stays
// the Pod's, and a CIDR covering a node address does not take it over.
func TestResolveRemoteNodes(t *testing.T) {
	st := NewManager().Resolve(Input{
		Pods:          []*corev1.Pod{pod("a", "p", nil, "10.244.2.5")},
		HostIPs:       []netip.Addr{netip.MustParseAddr("10.250.0.11")},
		RemoteNodeIPs: []netip.Addr{netip.MustParseAddr("10.250.0.12"), netip.MustParseAddr("::ffff:10.250.0.13"), netip.MustParseAddr("10.250.0.11"), netip.MustParseAddr("10.244.2.5"), netip.MustParseAddr("10.250.0.12")},
		CIDRs:         []netip.Prefix{netip.MustParsePrefix("10.250.0.13/32")},
	})
	got := map[string]string{}
	for _, e := range st.IPCache {
		got[e.Prefix.String()] = e.Identity.String()
	}
	want := map[string]string{
		"10.244.2.5/32":  "256",
		"10.250.0.11/32": "reserved:host",
		"10.250.0.12/32": "reserved:remote-node",
		"10.250.0.13/32": "reserved:remote-node",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ipcache (-want +got):\n%s", diff)
	}
}

// TestResolveIngressIPs: every node's ingress address maps to the
// reserved ingress identity, this node's too; one that is also this
// node's address, a Pod's or another node's stays theirs (and is
// reported), so an annotation cannot turn their traffic into ingress.
func TestResolveIngressIPs(t *testing.T) {
	st := NewManager().Resolve(Input{
		Pods:          []*corev1.Pod{pod("a", "p", nil, "10.244.2.5")},
		HostIPs:       []netip.Addr{netip.MustParseAddr("10.250.0.11")},
		RemoteNodeIPs: []netip.Addr{netip.MustParseAddr("10.250.0.12")},
		IngressIPs: []netip.Addr{netip.MustParseAddr("10.244.1.254"), netip.MustParseAddr("::ffff:10.244.2.254"),
			netip.MustParseAddr("10.244.1.254"), netip.MustParseAddr("10.250.0.11"), netip.MustParseAddr("10.244.2.5"),
			netip.MustParseAddr("10.250.0.12")},
	})
	got := map[string]string{}
	for _, e := range st.IPCache {
		got[e.Prefix.String()] = e.Identity.String()
	}
	want := map[string]string{
		"10.244.2.5/32":   "256",
		"10.250.0.11/32":  "reserved:host",
		"10.250.0.12/32":  "reserved:remote-node",
		"10.244.1.254/32": "reserved:ingress",
		"10.244.2.254/32": "reserved:ingress",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ipcache (-want +got):\n%s", diff)
	}
	if len(st.Problems) != 3 {
		t.Errorf("problems: %v, want one per ingress address taken by another owner", st.Problems)
	}
}
