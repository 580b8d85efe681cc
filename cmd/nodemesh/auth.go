package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nodemesh/nodemesh/internal/agent/api"
)

// authCmd shows a running agent's mutual-authentication state.
func authCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("usage: nodemesh auth list [--socket PATH] [-o table|json]")
	}
	fs := flag.NewFlagSet("auth list", flag.ContinueOnError)
	socket := fs.String("socket", "/var/run/nodemesh/agent.sock", "the agent's local API socket")
	output := fs.String("o", "table", "output format: table or json")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o: unknown format %q (table, json)", *output)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := api.FetchAuth(ctx, *socket)
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printAuth(stdout, st, time.Now())
	return nil
}

func printAuth(w io.Writer, st *api.AuthStatus, now time.Time) {
	ready := "ready"
	if !st.Ready {
		ready = "not ready: " + st.Error
	}
	fmt.Fprintf(w, "Identity source: %s (%s); %d relations required by policy, %d in the auth map; %d packets dropped for lack of an entry\n\n",
		st.Source, ready, st.Pairs, len(st.Entries), st.AuthRequiredDrops)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCAL\tREMOTE\tNODE\tEXPIRES\tIN")
	for _, e := range st.Entries {
		node := "local"
		if e.RemoteNode != 0 {
			node = strconv.Itoa(int(e.RemoteNode))
			if e.NodeName != "" {
				node += " (" + e.NodeName + ")"
			}
		}
		left := e.Expiry.Sub(now).Round(time.Second).String()
		if !e.Expiry.After(now) {
			left = "expired"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", e.Local, e.Remote, node, e.Expiry.Local().Format(time.DateTime), left)
	}
	tw.Flush()
	for _, c := range []struct {
		name string
		m    map[string]uint64
	}{{"Manager", st.Manager}, {"Handshakes initiated", st.Client}, {"Handshakes answered", st.Server}} {
		fmt.Fprintf(w, "\n%s:", c.name)
		keys := make([]string, 0, len(c.m))
		for k, v := range c.m {
			if v != 0 {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if len(keys) == 0 {
			fmt.Fprint(w, " none")
		}
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%d", k, c.m[k])
		}
		fmt.Fprintln(w)
	}
}
