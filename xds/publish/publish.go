// Package publish adapts the xDS server to the agent's data-plane
// interface (mesh/dataplane): Publish translates IR into Envoy resources
// and hands them to the server; Proxies turns the server's ACK/NACK table
// into the agent's status types, tracing each rejection to the objects its
// resources were made for (translator.OriginOf on their names); Changed
// passes the server's change event on. It is the only place where the
// agent's world and the xDS world meet, and it imports no Kubernetes code.
package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/server"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// Publisher implements dataplane.Publisher on top of an xDS server.
type Publisher struct {
	srv *server.Server
	// tr reuses the Envoy objects of unchanged IR objects between
	// publications, so the server need not re-marshal them.
	tr *translator.Translator
	// last is the server version of the last successful Publish.
	last atomic.Pointer[string]
}

var _ dataplane.Publisher = (*Publisher)(nil)

// New returns a Publisher delivering through srv.
func New(srv *server.Server) *Publisher { return &Publisher{srv: srv, tr: translator.New()} }

// Publish translates cfg and updates the server. Only resource types that
// have at least one resource are listed in the returned versions. cfg must
// not be modified afterwards (the translator compares the next one with
// it).
func (p *Publisher) Publish(ctx context.Context, cfg *ir.Config) (dataplane.Publication, error) {
	res, err := p.tr.Translate(cfg)
	if err != nil {
		return dataplane.Publication{}, fmt.Errorf("translating to Envoy resources: %w", err)
	}
	up, err := p.srv.Update(ctx, res)
	if err != nil {
		return dataplane.Publication{}, fmt.Errorf("updating xDS server: %w", err)
	}
	p.last.Store(&up.Version)
	return Publication(res, up), nil
}

// WaitForAck blocks until every connected proxy runs the configuration of
// the last successful Publish, a proxy rejected part of it
// (*server.NackError), a later Publish superseded it
// (server.ErrSuperseded), or ctx ends; see server.WaitForAck (with no
// proxy connected it returns at once). Safe from any goroutine; it waits
// for an ACK event, never polls.
func (p *Publisher) WaitForAck(ctx context.Context) error {
	v := p.last.Load()
	if v == nil {
		return errors.New("waiting for proxies: nothing published yet")
	}
	return p.srv.WaitForAck(ctx, *v)
}

// Publication describes an update in the agent's terms: the versions of
// the types that have at least one resource (the ones proxies must ACK),
// and the translator's warnings.
func Publication(res *translator.Resources, up server.UpdateResult) dataplane.Publication {
	counts := map[string]int{
		"Listener":              len(res.Listeners),
		"RouteConfiguration":    len(res.RouteConfigurations),
		"Cluster":               len(res.Clusters),
		"ClusterLoadAssignment": len(res.ClusterLoadAssignments),
		"Secret":                len(res.Secrets),
		"TypedExtensionConfig":  len(res.ExtensionConfigs),
	}
	versions := map[string]string{}
	for url, v := range up.TypeVersions {
		if t := shortType(url); counts[t] > 0 {
			versions[t] = v
		}
	}
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, w.String())
	}
	return dataplane.Publication{Versions: versions, Changed: up.Changed, Warnings: warnings}
}

// Proxies reports the server's ACK/NACK table.
func (p *Publisher) Proxies() []dataplane.Proxy {
	nodes := p.srv.Status()
	out := make([]dataplane.Proxy, 0, len(nodes))
	for _, n := range nodes {
		px := dataplane.Proxy{Node: n.ID, Connected: n.Connected, Since: n.ConnectedSince}
		for _, ts := range n.Types {
			st := dataplane.TypeState{Type: shortType(ts.TypeURL), Sent: ts.VersionSent, Acked: ts.VersionAcked}
			// A NACK older than the last ACK is history, not a problem.
			if nk := ts.LastNack; nk != nil && nk.At.After(ts.AckedAt) {
				st.Nack = &dataplane.Nack{Version: nk.Version, Message: nk.Message, Time: nk.At,
					Resources: nk.Changed, Objects: objectsOf(nk.Changed)}
			}
			px.Types = append(px.Types, st)
		}
		out = append(out, px)
	}
	return out
}

// Changed is the server's change event (see dataplane.Publisher).
func (p *Publisher) Changed() <-chan struct{} { return p.srv.Changed() }

// objectKinds maps the translator's origins to the agent's object kinds.
var objectKinds = map[translator.OriginKind]string{
	translator.OriginGateway: dataplane.ObjectGateway,
	translator.OriginPolicy:  dataplane.ObjectPolicy,
	translator.OriginService: dataplane.ObjectService,
	translator.OriginSecret:  dataplane.ObjectSecret,
	translator.OriginIngress: dataplane.ObjectIngress,

	translator.OriginEnvoyConfig:            dataplane.ObjectEnvoyConfig,
	translator.OriginClusterwideEnvoyConfig: dataplane.ObjectClusterwideEnvoyConfig,
}

// objectsOf reads the objects resources were made for from their names
// (translator.OriginOf), once each, in order of first appearance. Names of
// no known object are left out.
func objectsOf(names []string) []dataplane.Object {
	var out []dataplane.Object
	seen := map[dataplane.Object]bool{}
	for _, n := range names {
		o := translator.OriginOf(n)
		kind, ok := objectKinds[o.Kind]
		if !ok {
			continue
		}
		obj := dataplane.Object{Kind: kind, Namespace: o.Namespace, Name: o.Name}
		if o.Kind == translator.OriginPolicy {
			// One policy object stands for all policy resources.
			obj.Name = ""
		}
		if !seen[obj] {
			seen[obj] = true
			out = append(out, obj)
		}
	}
	return out
}

// shortType turns "type.googleapis.com/envoy.config.listener.v3.Listener"
// into "Listener".
func shortType(url string) string {
	return url[strings.LastIndex(url, ".")+1:]
}
