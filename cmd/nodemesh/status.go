package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/internal/agent/api"
)

// statusCmd prints a running agent's status.
func statusCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	socket := fs.String("socket", "/var/run/nodemesh/agent.sock", "the agent's local API socket")
	output := fs.String("o", "table", "output format: table, json or yaml")
	nodes := fs.Bool("nodes", false, "Kubernetes mode: every node's network policy state (from the NodeProxyStatus objects) and which nodes have not enforced a policy yet")
	kubeconfig := fs.String("kubeconfig", "", "with --nodes: kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if *nodes {
		return nodesStatus(ctx, *kubeconfig, stdout)
	}
	st, err := api.FetchStatus(ctx, *socket)
	if err != nil {
		return err
	}
	if *output != "table" {
		return render(stdout, st, *output)
	}
	printStatus(stdout, st)
	return nil
}

func printStatus(w io.Writer, st *api.Status) {
	fmt.Fprintf(w, "Configuration generation %d", st.Generation)
	if len(st.Versions) > 0 {
		var vs []string
		for t, v := range st.Versions {
			vs = append(vs, t+"="+short(v))
		}
		sort.Strings(vs)
		fmt.Fprintf(w, "; published %s", strings.Join(vs, " "))
	}
	fmt.Fprintln(w)
	for _, e := range st.ConfigErrors {
		fmt.Fprintln(w, "input error (last good version in use):", e)
	}
	if st.PublishError != "" {
		fmt.Fprintln(w, "publish error (previous configuration still serving):", st.PublishError)
	}
	for _, wmsg := range st.Warnings {
		fmt.Fprintln(w, "warning:", wmsg)
	}
	fmt.Fprintln(w)

	if len(st.GatewayClasses)+len(st.Gateways)+len(st.Routes) > 0 {
		printObjects(w, st)
	}

	if p := st.Policy; p != nil {
		printPolicy(w, p)
	}

	if len(st.EnvoyConfigs) > 0 {
		printEnvoyConfigs(w, st.EnvoyConfigs)
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROXY\tCONNECTED\tTYPE\tSENT\tACKED\tNACK")
	if len(st.Proxies) == 0 {
		fmt.Fprintln(tw, "(none has connected)\t\t\t\t\t")
	}
	for _, p := range st.Proxies {
		conn := "no"
		if p.Connected {
			conn = "yes"
		}
		if len(p.Types) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t\t\t\n", p.Node, conn)
		}
		for _, t := range p.Types {
			nack := "-"
			if t.Nack != nil {
				nack = fmt.Sprintf("version %s: %s", short(t.Nack.Version), t.Nack.Message)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Node, conn, t.Type, short(t.Sent), short(t.Acked), nack)
		}
	}
	tw.Flush()
}

// printObjects is the Gateway API table: one row per GatewayClass and
// Gateway, one per route parent.
func printObjects(w io.Writer, st *api.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tACCEPTED\tPROGRAMMED\tRESOLVEDREFS\tDETAIL")
	for _, gc := range st.GatewayClasses {
		fmt.Fprintf(tw, "GatewayClass\t\t%s\t%s\t-\t-\t%s\n", gc.Name, cond(gc.Status.Conditions, "Accepted"), problems(gc.Status.Conditions))
	}
	for _, g := range st.Gateways {
		var addrs []string
		for _, a := range g.Status.Addresses {
			addrs = append(addrs, a.Value)
		}
		var ls []string
		for _, l := range g.Status.Listeners {
			ls = append(ls, fmt.Sprintf("%s(%d routes)", l.Name, l.AttachedRoutes))
		}
		detail := strings.TrimSpace(strings.Join(addrs, ",") + " " + strings.Join(ls, " "))
		if p := problems(g.Status.Conditions); p != "" {
			detail += "; " + p
		}
		for _, l := range g.Status.Listeners {
			if p := problems(l.Conditions); p != "" {
				detail += fmt.Sprintf("; listener %s: %s", l.Name, p)
			}
		}
		fmt.Fprintf(tw, "Gateway\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Key.Namespace, g.Key.Name,
			cond(g.Status.Conditions, "Accepted"), cond(g.Status.Conditions, "Programmed"), cond(g.Status.Conditions, "ResolvedRefs"), detail)
	}
	for _, r := range st.Routes {
		for _, p := range r.Status.Parents {
			parent := string(p.ParentRef.Name)
			if p.ParentRef.SectionName != nil {
				parent += "/" + string(*p.ParentRef.SectionName)
			}
			detail := "parent " + parent
			if pr := problems(p.Conditions); pr != "" {
				detail += "; " + pr
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t%s\t%s\n", r.Kind, r.Key.Namespace, r.Key.Name,
				cond(p.Conditions, "Accepted"), cond(p.Conditions, "ResolvedRefs"), detail)
		}
	}
	tw.Flush()
}

// printPolicy shows which version of each network policy is enforced and
// the state of the datapath behind them.
func printPolicy(w io.Writer, p *api.PolicyStatus) {
	fmt.Fprintf(w, "\nNetwork policy: %d identities, %d local endpoints, %d datapath rows", p.Identities, p.Endpoints, p.Rows)
	if p.DatapathPending {
		fmt.Fprint(w, "; new redirects wait for the proxies to acknowledge their listeners")
	}
	fmt.Fprintln(w)
	if p.DatapathError != "" {
		fmt.Fprintln(w, "datapath error (previous tables in force):", p.DatapathError)
	}
	if p.ProxyError != "" {
		fmt.Fprintln(w, "proxy rejected the policy configuration (the flows redirected to it are dropped):", p.ProxyError)
	}
	if p.GatewayFromNode != "" {
		fmt.Fprintln(w, "gateway traffic refused:", p.GatewayFromNode)
	}
	for _, pr := range p.Problems {
		fmt.Fprintln(w, "problem:", pr)
	}
	if ie := p.IngressEndpoint; ie != nil {
		printIngressEndpoint(w, ie)
	}
	if len(p.Policies) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tSTATE\tSELECTED\tDETAIL")
	for _, ps := range p.Policies {
		var parts []string
		if ps.Reason != "" {
			parts = append(parts, ps.Reason+": "+ps.Message)
		}
		if ps.Error != "" {
			parts = append(parts, ps.Error)
		}
		for _, wmsg := range ps.Warnings {
			parts = append(parts, "warning: "+wmsg)
		}
		detail := strings.Join(parts, "; ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", ps.Kind, ps.Namespace, ps.Name, ps.State, ps.Selected, detail)
	}
	tw.Flush()
}

// printIngressEndpoint shows the node's ingress endpoint: which policies
// select it and the state of each of its two check points.
func printIngressEndpoint(w io.Writer, ie *api.IngressEndpointStatus) {
	fmt.Fprintf(w, "Ingress endpoint (identity %d, %s): ", ie.Identity, strings.Join(ie.Labels, ","))
	if !ie.Selected {
		fmt.Fprintln(w, "no policy selects it; both directions allow everything")
		return
	}
	fmt.Fprintf(w, "selected by %s\n", strings.Join(ie.Policies, ", "))
	for _, d := range []struct {
		name string
		st   api.IngressDirectionStatus
	}{{"world → ingress  ", ie.Ingress}, {"ingress → backend", ie.Egress}} {
		line := string(d.st.State)
		switch d.st.State {
		case api.IngressUnenforced:
			line += " (no policy selects this direction: everything is allowed)"
		case api.IngressEnforced, api.IngressFailClosed:
			line += fmt.Sprintf(" (%d allow, %d deny rules)", d.st.AllowRules, d.st.DenyRules)
		}
		if d.st.Reason != "" {
			line += ": " + d.st.Reason
		}
		fmt.Fprintf(w, "  %s  %s\n", d.name, line)
	}
}

func cond(conds []metav1.Condition, typ string) string {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return string(c.Status)
	}
	return "-"
}

// problems summarises conditions that are not in their healthy state.
func problems(conds []metav1.Condition) string {
	var out []string
	for _, c := range conds {
		healthy := c.Status == metav1.ConditionTrue
		if c.Type == "Conflicted" {
			healthy = c.Status == metav1.ConditionFalse
		}
		if !healthy {
			out = append(out, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
		}
	}
	return strings.Join(out, "; ")
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	if v == "" {
		return "-"
	}
	return v
}

// printEnvoyConfigs is the CiliumEnvoyConfig table (and the Services
// balanced by the proxy): one row per object, with why it is refused or
// waiting.
func printEnvoyConfigs(w io.Writer, cs []api.EnvoyConfigStatus) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tVALID\tREASON\tDETAIL")
	for _, c := range cs {
		valid := "yes"
		if !c.Valid {
			valid = "no"
		}
		detail := c.Message
		if c.Pending {
			detail = strings.TrimPrefix(detail+"; waiting for the proxies to acknowledge its listeners (its Services refuse connections until then)", "; ")
		}
		ns := c.Namespace
		if ns == "" {
			ns = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Kind, ns, c.Name, valid, c.Reason, strings.ReplaceAll(detail, "\n", "; "))
	}
	tw.Flush()
}
