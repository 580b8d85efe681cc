package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// flowsCmd prints the flows a running agent keeps (the proxy's L7 flows
// and the datapath's drops and redirects), Hubble-style.
func flowsCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("flows", flag.ContinueOnError)
	socket := fs.String("socket", "/var/run/nodemesh/agent.sock", "the agent's local API socket")
	output := fs.String("o", "table", "output format: table or json (one flow per line)")
	verdict := fs.String("verdict", "", "only flows with this verdict: FORWARDED, DROPPED, ERROR or REDIRECTED")
	protocol := fs.String("protocol", "", "only flows of this protocol: http, grpc, kafka, tcp, udp, icmp, icmpv6 or sctp")
	ident := fs.Uint("identity", 0, "only flows from or to this identity")
	workload := fs.String("workload", "", "only flows from or to this workload (namespace/name)")
	since := fs.Duration("since", 0, "only flows of the last duration (e.g. 5m)")
	last := fs.Int("last", 0, "only the last N matching flows")
	follow := fs.Bool("f", false, "keep printing new flows until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o: unknown format %q (table, json)", *output)
	}
	q := api.FlowQuery{Filter: flow.Filter{Verdict: *verdict, Protocol: *protocol, Identity: uint32(*ident), Workload: *workload},
		Limit: *last, Follow: *follow}
	if *since > 0 {
		q.Filter.Since = time.Now().Add(-*since)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if !*follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		return api.FetchFlows(ctx, *socket, q, func(f flow.Flow) error { return enc.Encode(f) })
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSOURCE\tDESTINATION\tDIRECTION\tPROTOCOL\tVERDICT\tSUMMARY\tLATENCY")
	err := api.FetchFlows(ctx, *socket, q, func(f flow.Flow) error {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Time.Local().Format("15:04:05.000"),
			endpoint(f.Source), endpoint(f.Destination), f.Direction, f.Protocol, f.Verdict, f.Summary(), f.Latency.Round(time.Microsecond))
		if *follow {
			return tw.Flush()
		}
		return nil
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	if *follow && ctx.Err() != nil {
		return nil // interrupted
	}
	return err
}

// endpoint renders "workload (identity) address".
func endpoint(e flow.Endpoint) string {
	s := e.Address.String()
	if e.Workload != "" {
		s = e.Workload + " " + s
	}
	if e.Identity != 0 {
		s += " (" + strconv.FormatUint(uint64(e.Identity), 10) + ")"
	}
	return s
}
