package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// demo prints what it does the way a user would type it, runs it, shows
// what came back and counts outcomes that differ from the expected ones.
type demo struct {
	out      io.Writer
	failures []string
}

func (d *demo) section(format string, args ...any) {
	fmt.Fprintf(d.out, "\n=== %s\n", fmt.Sprintf(format, args...))
}

// say prints a comment line.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "# %s\n", fmt.Sprintf(format, args...))
}

// note prints an indented remark about what just happened.
func (d *demo) note(format string, args ...any) {
	fmt.Fprintf(d.out, "  (%s)\n", fmt.Sprintf(format, args...))
}

// command prints a command line without running it.
func (d *demo) command(argv []string, suffix string) {
	fmt.Fprintf(d.out, "$ %s%s\n", cmdline(argv), suffix)
}

// fail records an unexpected outcome.
func (d *demo) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.failures = append(d.failures, msg)
	fmt.Fprintf(d.out, "  !! expected %s\n", msg)
}

// ran is what a command printed and how it ended.
type ran struct {
	stdout, stderr string
	exit           int
}

// run prints argv, runs it and prints its output indented. A command that
// runs but exits non-zero is not an error here: callers judge the result.
func (d *demo) run(ctx context.Context, argv ...string) (ran, error) {
	d.command(argv, "")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := ran{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, ctx.Err()
	case errors.As(err, &exit):
		r.exit = exit.ExitCode()
	case err != nil:
		return r, fmt.Errorf("running %s: %w", argv[0], err)
	}
	for _, text := range []string{r.stdout, r.stderr} {
		text = strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
		if text != "" {
			fmt.Fprintln(d.out, "  "+strings.ReplaceAll(text, "\n", "\n  "))
		}
	}
	return r, nil
}

// want is the expected answer to a request; a zero code means the
// connection must time out (the datapath drops it).
type want struct {
	code int
	body string
}

// curlTimeout exits curl with code 28 when the TCP handshake hangs.
const curlTimeout = 28

// request sends method path to the ship `to` from inside ship `from`,
// with curl in from's namespace, and checks the answer.
func (d *demo) request(ctx context.Context, from, to *ship, method, path string, w want) error {
	url := fmt.Sprintf("http://%s%s", to.w.IPv4, path)
	r, err := d.run(ctx, "ip", "netns", "exec", from.w.Name,
		"curl", "-sS", "--connect-timeout", "2", "-m", "5", "-w", `HTTP %{http_code}\n`, "-X", method, url)
	if err != nil {
		return err
	}
	// -w appends the status after the body.
	body, status := r.stdout, ""
	if i := strings.LastIndex(r.stdout, "HTTP "); i >= 0 {
		body, status = r.stdout[:i], r.stdout[i+len("HTTP "):]
	}
	body, status = strings.TrimSpace(body), strings.TrimSpace(status)
	switch {
	case w.code == 0 && r.exit != curlTimeout:
		d.fail("%s's connection to %s to time out (curl exit %d), got exit %d", from.name, to.name, curlTimeout, r.exit)
	case w.code == 0:
		d.note("no answer: the datapath dropped %s's connection attempts", from.name)
	case r.exit != 0 || status != fmt.Sprint(w.code) || body != w.body:
		d.fail("%s %s on %s from %s: HTTP %d %q, got HTTP %s %q (curl exit %d)",
			method, path, to.name, from.name, w.code, w.body, status, body, r.exit)
	}
	return nil
}

// printBed shows where everything lives.
func (d *demo) printBed(n *node) {
	d.section("The node and its workloads: one network namespace each, joined by veth pairs")
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  node\t%s\t%s\teBPF datapath on lxc0..lxc3, nodemesh-proxy\n", n.bed.Node.Name, testbed.NodeIPv4)
	for _, s := range n.ships() {
		var ls []string
		for _, k := range []string{"org", "class"} {
			ls = append(ls, k+"="+s.labels[k])
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s (veth %s)\n", s.name, s.w.Name, s.w.IPv4, strings.Join(ls, " "), s.w.HostIf)
	}
	tw.Flush()
	d.say("The deathstars answer POST %s and PUT %s on port 80, like Cilium's.", landing, exhaustPort)
	d.say("Pods with these labels and addresses: %s", filepath.Join(n.config, appFile))
}
