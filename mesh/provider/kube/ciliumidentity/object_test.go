package ciliumidentity

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodemesh/nodemesh/mesh/identity"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want uint32
	}{
		{"256", 256}, {"65535", 65535}, {"4242", 4242},
		{"255", 0}, {"8", 0}, {"65536", 0}, {"0300", 0}, {"+300", 0}, {"-300", 0}, {"abc", 0}, {"", 0},
		{"3e2", 0}, {"300 ", 0}, {"99999999999999999999", 0}, {"١٢٣", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := parseName(tc.name)
			if tc.want == 0 {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("parseName(%q) = %d, %v; want ErrInvalid", tc.name, id, err)
				}
				return
			}
			if err != nil || uint32(id) != tc.want {
				t.Fatalf("parseName(%q) = %d, %v; want %d", tc.name, id, err, tc.want)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	huge := map[string]string{}
	for i := range MaxLabels + 1 {
		huge[fmt.Sprintf("k8s:l%d", i)] = "v"
	}
	big := map[string]string{"k8s:a": strings.Repeat("x", MaxLabelBytes)}
	for _, tc := range []struct {
		name string
		in   map[string]string
		ok   bool
	}{
		{"cilium's shape", map[string]string{"k8s:app": "web", "k8s:io.kubernetes.pod.namespace": "default", "reserved:host": ""}, true},
		{"empty", map[string]string{}, false},
		{"no source", map[string]string{"app": "web"}, false},
		{"empty source", map[string]string{":app": "web"}, false},
		{"empty key", map[string]string{"k8s:": "web"}, false},
		{"too many", huge, false},
		{"too big", big, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls, err := parseLabels(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("parseLabels: %v, %v; want ok=%v", ls, err, tc.ok)
			}
			if tc.ok && len(ls) != len(tc.in) {
				t.Fatalf("parsed %d labels from %d", len(ls), len(tc.in))
			}
		})
	}
}

// TestObjectRoundTrip: what newObject writes, parseObject reads back as
// the same number and labels, in Cilium's layout.
func TestObjectRoundTrip(t *testing.T) {
	ls := identity.NewLabels(identity.Label{Source: "k8s", Key: "app", Value: "web"},
		identity.Label{Source: "k8s", Key: identity.LabelNamespace, Value: "shop"})
	u := newObject(4242, ls)
	if u.GetName() != "4242" || u.GetAPIVersion() != "cilium.io/v2" || u.GetKind() != "CiliumIdentity" {
		t.Fatalf("object %s %s/%s", u.GetName(), u.GetAPIVersion(), u.GetKind())
	}
	sl, _, _ := unstructured.NestedStringMap(u.Object, "security-labels")
	if sl["k8s:app"] != "web" || sl["k8s:io.kubernetes.pod.namespace"] != "shop" || len(sl) != 2 {
		t.Fatalf("security-labels %v", sl)
	}
	if got := u.GetLabels(); len(got) != 1 || got[identity.LabelNamespace] != "shop" {
		t.Fatalf("metadata labels %v", got)
	}
	e := parseObject(u)
	if e.Err != nil || e.ID != 4242 || !e.Labels.Equal(ls) {
		t.Fatalf("parsed %+v", e)
	}
}

func TestCandidateInRange(t *testing.T) {
	seen := map[uint32]bool{}
	for i := range 1000 {
		c := candidate(identity.NewLabels(identity.Label{Source: "k8s", Key: "app", Value: fmt.Sprint(i)}))
		if c < identity.MinWorkload || c > identity.MaxWorkload {
			t.Fatalf("candidate %d outside the range", c)
		}
		seen[uint32(c)] = true
	}
	if len(seen) < 900 {
		t.Fatalf("only %d distinct candidates for 1000 sets", len(seen))
	}
}
