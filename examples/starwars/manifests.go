package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// ship is one Pod of the demo, living in its own namespace of the bed.
type ship struct {
	name   string
	labels map[string]string
	w      *testbed.Workload
}

// Policy files shipped next to this program; the demo copies them into
// the agent's config directory as rule1.yaml, the way a Cilium user would
// `kubectl apply` one and then the other.
const (
	l34PolicyFile = "sw_l3_l4_policy.yaml"
	l7PolicyFile  = "sw_l3_l4_l7_policy.yaml"
	policyTarget  = "rule1.yaml"
	appFile       = "http-sw-app.yaml"
)

// fleet assigns the demo's Pods to the bed's first four workloads. Like
// Cilium's http-sw-app.yaml, the deathstar has two replicas.
func fleet(ws []*testbed.Workload) (deathstars []*ship, tiefighter, xwing *ship) {
	deathstar := func(i int) *ship {
		return &ship{name: fmt.Sprintf("deathstar-%d", i+1), labels: map[string]string{"org": "empire", "class": "deathstar"}, w: ws[i]}
	}
	deathstars = []*ship{deathstar(0), deathstar(1)}
	tiefighter = &ship{name: "tiefighter", labels: map[string]string{"org": "empire", "class": "tiefighter"}, w: ws[2]}
	xwing = &ship{name: "xwing", labels: map[string]string{"org": "alliance", "class": "xwing"}, w: ws[3]}
	return deathstars, tiefighter, xwing
}

// podsYAML renders the Pods as a user would declare them in standalone
// mode: status.podIPs carries the addresses a CNI would have reported.
func podsYAML(ships []*ship) string {
	var b strings.Builder
	b.WriteString("# The Star Wars demo's workloads (Cilium's http-sw-app.yaml), with the\n")
	b.WriteString("# addresses of this run's network namespaces.\n")
	for _, s := range ships {
		keys := make([]string, 0, len(s.labels))
		for k := range s.labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n  labels:\n", s.name)
		for _, k := range keys {
			fmt.Fprintf(&b, "    %s: %s\n", k, s.labels[k])
		}
		fmt.Fprintf(&b, "status:\n  podIPs:\n  - ip: %s\n  - ip: %q\n", s.w.IPv4, s.w.IPv6.String())
	}
	return b.String()
}

// envScript is a file users source to reach the workloads by name.
func envScript(ships []*ship, node *testbed.Namespace) string {
	var b strings.Builder
	b.WriteString("# Source this file (as root) to run commands inside the demo's workloads:\n")
	b.WriteString("#   tiefighter curl -s -X POST http://$DEATHSTAR/v1/request-landing\n")
	fmt.Fprintf(&b, "DEATHSTAR=%s\nDEATHSTAR2=%s\n", ships[0].w.IPv4, ships[1].w.IPv4)
	for _, s := range ships {
		fmt.Fprintf(&b, "%s() { ip netns exec %s \"$@\"; }\n", strings.ReplaceAll(s.name, "-", ""), s.w.Name)
	}
	fmt.Fprintf(&b, "# the node: eBPF datapath on lxc0..lxc3, nodemesh-proxy\nmesh_node() { ip netns exec %s \"$@\"; }\n", node.Name)
	return b.String()
}

// writeAtomic replaces path with data in one rename, so the agent's
// directory watch never reads half a file.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
