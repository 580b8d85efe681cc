package agent

import (
	"fmt"
	"time"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
)

// rowsState is which table of a compilation the datapath holds.
type rowsState uint8

const (
	rowsNone     rowsState = iota // the previous compilation's
	rowsCompiled                  // the compiled rows
	rowsClosed                    // the compiled rows with redirects turned into drops
)

// policyTypes are the resource types whose rejection leaves a proxy with
// L7 policy other than the published one: the filter configurations
// (ECDS), and the listeners — the proxy rejects a listener update as a
// whole, so the policy listeners' changes in it (a filter added, a new
// listener) did not apply either, whichever listener was at fault.
var policyTypes = map[string]bool{"Listener": true, "TypedExtensionConfig": true}

// proxyVerdict is what the connected proxies made of a publication.
type proxyVerdict struct {
	// acked: at least one proxy is connected and every connected one
	// acknowledged every version.
	acked bool
	// rejected, when set, describes a connected proxy's rejection of a
	// policy type of the publication.
	rejected string
}

// proxyView judges the proxies' answers to the publication of versions,
// made at since. A rejection counts when it names the published version
// or arrived after the publication (a make-before-break step may carry
// another version of the same content), and the proxy has not
// acknowledged the published version since.
func proxyView(proxies []dataplane.Proxy, versions map[string]string, since time.Time) proxyVerdict {
	v := proxyVerdict{acked: true}
	connected := 0
	for _, p := range proxies {
		if !p.Connected {
			continue
		}
		connected++
		v.acked = v.acked && p.AckedAll(versions)
		for _, ts := range p.Types {
			want, ok := versions[ts.Type]
			if !ok || !policyTypes[ts.Type] || ts.Nack == nil || ts.Acked == want {
				continue
			}
			if (ts.Nack.Version == want || !ts.Nack.Time.Before(since)) && v.rejected == "" {
				v.rejected = fmt.Sprintf("proxy %s rejected %s version %s: %s", p.Node, ts.Type, ts.Nack.Version, ts.Nack.Message)
			}
		}
	}
	v.acked = v.acked && connected > 0 && v.rejected == ""
	return v
}

// dropRedirects is p with every row that redirects to the proxy turned
// into a drop: what the datapath holds while a proxy rejected the L7
// configuration those rows depend on. Flows that need no proxy keep their
// verdicts.
func dropRedirects(p model.Policy) model.Policy {
	out := model.Policy{Enforce: p.Enforce, Entries: make([]model.PolicyEntry, len(p.Entries))}
	for i, e := range p.Entries {
		if e.Verdict == model.Redirect {
			e.Verdict, e.ProxyPort = model.Deny, 0
		}
		out.Entries[i] = e
	}
	return out
}

// followProxies keeps the datapath in line with the proxies' answers to
// the publication of compiled, from state, until a newer compilation
// supersedes it (superseded is closed) or every connected proxy
// acknowledged it: a rejection writes the closed table, an
// acknowledgement (or ackWait without any answer, for rows still waiting)
// the compiled one. It wakes on the publisher's change events (a proxy
// answered, connected or went away) and on the ackWait deadline; it never
// polls.
func (a *Agent) followProxies(superseded <-chan struct{}, gen uint64, compiled model.Policy, versions map[string]string, since time.Time, ports map[uint16]bool, state rowsState) {
	deadline := time.NewTimer(time.Until(since.Add(ackWait)))
	defer deadline.Stop()
	expired := false
	for {
		select {
		case <-superseded:
			return
		default:
		}
		changed := a.cfg.Publisher.Changed()
		view := proxyView(a.cfg.Publisher.Proxies(), versions, since)
		switch {
		case view.rejected != "":
			if state != rowsClosed {
				a.log.Error("a proxy rejected the L7 policy configuration; dropping the flows redirected to it", "error", view.rejected)
				a.syncPolicy(gen, dropRedirects(compiled), nil)
				state = rowsClosed
			}
		case view.acked:
			if state != rowsCompiled {
				a.syncPolicy(gen, compiled, ports)
			}
			return
		case state == rowsNone && expired:
			a.log.Warn("writing redirect rows before every proxy acknowledged the policy listeners", "waited", ackWait)
			a.syncPolicy(gen, compiled, ports)
			state = rowsCompiled
		}
		var timeout <-chan time.Time
		if state == rowsNone && !expired {
			timeout = deadline.C
		}
		select {
		case <-superseded:
			return
		case <-changed:
		case <-timeout:
			expired = true
		}
	}
}
