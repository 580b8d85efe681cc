package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
)

// staleAfter is how old a node's heartbeat may be before its report is
// called stale (the agents rewrite it every 30 s or so when idle).
const staleAfter = 2 * time.Minute

// nodesStatus prints, from every node's NodeProxyStatus, the network policy
// state of each node and which nodes have not enforced a policy yet.
func nodesStatus(ctx context.Context, kubeconfig string, w io.Writer) error {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating Kubernetes client: %w", err)
	}
	list, err := dyn.Resource(v1alpha1.NodeProxyStatusResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing NodeProxyStatuses: %w", err)
	}
	var reports []v1alpha1.NodeProxyStatus
	for _, u := range list.Items {
		var r v1alpha1.NodeProxyStatus
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
			return fmt.Errorf("decoding NodeProxyStatus %s: %w", u.GetName(), err)
		}
		reports = append(reports, r)
	}
	printNodes(w, reports, time.Now())
	return nil
}

// printNodes renders the per-node policy state: one line per node, then
// every policy that is not Enforced on every node, with the nodes that
// hold it back and why.
func printNodes(w io.Writer, reports []v1alpha1.NodeProxyStatus, now time.Time) {
	sort.Slice(reports, func(i, j int) bool { return reports[i].Name < reports[j].Name })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHEARTBEAT\tENDPOINTS\tPOLICIES\tENFORCED\tDATAPATH")
	type key struct{ kind, ns, name string }
	type lag struct{ node, state string }
	behind := map[key][]lag{}
	enforcedOn := map[key]int{}
	var keys []key
	seen := map[key]bool{}
	for _, r := range reports {
		beat := "never"
		if t := r.Status.HeartbeatTime; !t.IsZero() {
			beat = now.Sub(t.Time).Round(time.Second).String() + " ago"
			if now.Sub(t.Time) > staleAfter {
				beat += " (stale)"
			}
		}
		p := r.Status.Policy
		if p == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\tno policy (agent without --policy)\n", r.Name, beat)
			continue
		}
		enforced := 0
		for _, e := range p.Policies {
			k := key{e.Kind, e.Namespace, e.Name}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
			if e.State == "Enforced" {
				enforced++
				enforcedOn[k]++
				continue
			}
			st := e.State
			if e.Reason != "" {
				st += " (" + e.Reason + ")"
			}
			behind[k] = append(behind[k], lag{r.Name, st})
		}
		dp := "ok"
		if p.DatapathError != "" {
			dp = "error: " + short(p.DatapathError)
		}
		total := fmt.Sprint(len(p.Policies))
		if p.Truncated {
			total += "+"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", r.Name, beat, p.Endpoints, total, enforced, dp)
	}
	tw.Flush()
	// A node that reports policy but does not list a policy others list
	// has not compiled it yet.
	for _, k := range keys {
		for _, r := range reports {
			if r.Status.Policy == nil || r.Status.Policy.Truncated {
				continue
			}
			found := false
			for _, e := range r.Status.Policy.Policies {
				found = found || (e.Kind == k.kind && e.Namespace == k.ns && e.Name == k.name)
			}
			if !found {
				behind[k] = append(behind[k], lag{r.Name, "not seen yet"})
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		if a.ns != b.ns {
			return a.ns < b.ns
		}
		return a.name < b.name
	})
	var lines []string
	for _, k := range keys {
		ls := behind[k]
		if len(ls) == 0 {
			continue
		}
		sort.Slice(ls, func(i, j int) bool { return ls[i].node < ls[j].node })
		var parts []string
		for _, l := range ls {
			parts = append(parts, l.node+": "+l.state)
		}
		name := k.name
		if k.ns != "" {
			name = k.ns + "/" + k.name
		}
		lines = append(lines, fmt.Sprintf("  %s %s (enforced on %d node(s)): %s", k.kind, name, enforcedOn[k], strings.Join(parts, "; ")))
	}
	if len(lines) == 0 {
		fmt.Fprintln(w, "\nEvery policy is enforced on every node that reports policy.")
		return
	}
	fmt.Fprintln(w, "\nNot enforced yet:")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
