package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/nodemesh/nodemesh/xds/translator"
)

// UpdateResult says what an Update did.
type UpdateResult struct {
	// Version identifies the configuration now desired; WaitForAck takes it.
	Version string
	// Changed is false when the resources equal the previous update's:
	// nothing was pushed.
	Changed bool
	// TypeVersions is the content-hash version of each resource type
	// (keyed by type URL) once the update is fully published.
	TypeVersions map[string]string
}

// Update makes res the configuration every connected proxy converges to.
// It versions each resource type by content, returns at once with
// Changed=false when nothing changed, and otherwise hands the new state to
// the publisher, which delivers it make-before-break (see the package
// comment). It does not wait for proxies: use WaitForAck for that.
//
// A failed update (a resource that fails Envoy validation, duplicate
// names, an inconsistent set such as a cluster without its endpoints)
// returns an error and changes nothing: the last good configuration keeps
// being served. Update may be called from any goroutine; calls are
// serialised. res is not modified and may be reused by the caller only if
// it is not modified afterwards (the server keeps references to its
// resources).
func (s *Server) Update(ctx context.Context, res *translator.Resources) (UpdateResult, error) {
	if res == nil {
		return UpdateResult{}, errors.New("updating xDS configuration: nil resources")
	}
	s.updateMu.Lock()
	defer s.updateMu.Unlock()

	s.mu.Lock()
	prev := s.desired
	s.mu.Unlock()

	var next state
	for k := range next {
		if err := ctx.Err(); err != nil {
			return UpdateResult{}, fmt.Errorf("updating xDS configuration: %w", err)
		}
		set, err := buildKind(kind(k), prev[k], res)
		if err != nil {
			return UpdateResult{}, fmt.Errorf("updating xDS configuration: %w", err)
		}
		next[k] = set
	}
	// The complete new configuration must be consistent on its own before
	// anything of it is published.
	if err := next.consistent(); err != nil {
		return UpdateResult{}, fmt.Errorf("updating xDS configuration: checking snapshot consistency: %w", err)
	}
	result := UpdateResult{Version: next.version(), TypeVersions: make(map[string]string, numKinds)}
	for k, t := range next {
		result.TypeVersions[kindTypeURL[k]] = t.version
	}
	s.mu.Lock()
	if s.desiredSet && s.desired.equal(next) {
		s.mu.Unlock()
		s.log.Debug("xDS configuration unchanged; nothing to push", "version", result.Version)
		return result, nil
	}
	s.desired = next
	s.desiredSet = true
	if s.completed == result.Version {
		// Back to an earlier configuration: it must roll out again.
		s.completed = ""
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.kick()
	result.Changed = true
	s.log.Info("xDS configuration updated", "version", result.Version,
		"listeners", len(next[kindListener].items), "routeConfigurations", len(next[kindRoute].items),
		"clusters", len(next[kindCluster].items), "secrets", len(next[kindSecret].items),
		"extensionConfigs", len(next[kindExtension].items))
	return result, nil
}

// comparableResource is a typed Envoy resource (a message pointer).
type comparableResource interface {
	types.Resource
	comparable
}

// buildKind builds the set of kind k from res.
func buildKind(k kind, prev *typeSet, res *translator.Resources) (*typeSet, error) {
	switch k {
	case kindCluster:
		return buildSet(k, res.Clusters, prev, res)
	case kindEndpoint:
		return buildSet(k, res.ClusterLoadAssignments, prev, res)
	case kindListener:
		return buildSet(k, res.Listeners, prev, res)
	case kindRoute:
		return buildSet(k, res.RouteConfigurations, prev, res)
	case kindSecret:
		return buildSet(k, res.Secrets, prev, res)
	default:
		return buildSet(k, res.ExtensionConfigs, prev, res)
	}
}

// buildSet indexes one kind's resources by name. A list holding exactly
// the objects of the list prev was built from, in the same order, is prev
// (its version and the maps the caches read included): the objects
// unchanged resources are made of are handed over again. Otherwise a
// resource carries its version (translator.Resources.Version): the object
// the previous update carried under the same name is reused as is, and
// another object with the same version keeps the previous entry (and
// object), so the cache sees no change. Nothing is marshalled or validated
// for a resource the translator versioned: it validated what it built. A
// resource without a version (one a caller put into the resources) is
// validated here and versioned by the hash of its serialized form, as
// go-control-plane versions resources.
func buildSet[T comparableResource](k kind, list []T, prev *typeSet, res *translator.Resources) (*typeSet, error) {
	if pl, ok := prev.list.([]T); ok && slices.Equal(list, pl) {
		return prev, nil
	}
	items := make(map[string]entry, len(list))
	for _, t := range list {
		var m types.Resource = t
		name := cachev3.GetResourceName(m)
		if name == "" {
			return nil, fmt.Errorf("%s: resource without a name", k)
		}
		if _, dup := items[name]; dup {
			return nil, fmt.Errorf("%s %q: defined twice", k, name)
		}
		old, had := prev.items[name]
		if had && old.last == m {
			items[name] = old
			continue
		}
		v, err := versionOf(m, res)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", k, name, err)
		}
		if had && old.version == v {
			old.last = m
			items[name] = old
			continue
		}
		e := entry{res: servedAs(m, res), version: v, last: m, deps: dependencies(k, name, m)}
		if l, ok := m.(*listenerv3.Listener); ok {
			if e.refs, err = secretRefs(l); err != nil {
				return nil, fmt.Errorf("%s %q: %w", k, name, err)
			}
			if e.exts, err = extensionRefs(l); err != nil {
				return nil, fmt.Errorf("%s %q: %w", k, name, err)
			}
		}
		if c, ok := m.(*clusterv3.Cluster); ok {
			if e.refs, err = clusterSecretRefs(c); err != nil {
				return nil, fmt.Errorf("%s %q: %w", k, name, err)
			}
		}
		items[name] = e
	}
	set := newTypeSet(items)
	// A copy: the caller may reuse its slice for another update.
	set.list = slices.Clone(list)
	return set, nil
}

// versionOf is the version of a resource: the translator's, or for a
// resource it did not emit, the hash of its serialized form once it passed
// validation.
func versionOf(m types.Resource, res *translator.Resources) (string, error) {
	if v := res.Version(m); v != "" {
		return v, nil
	}
	if err := validate(m); err != nil {
		return "", err
	}
	b, err := cachev3.MarshalResource(m)
	if err != nil {
		return "", fmt.Errorf("marshalling: %w", err)
	}
	return cachev3.HashResource(b), nil
}

// validating, set only by tests, sees every resource the server
// validates.
var validating func(m types.Resource)

// validate runs go-control-plane's generated validation, which every
// Envoy message has.
func validate(m types.Resource) error {
	if validating != nil {
		validating(m)
	}
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		return v.ValidateAll()
	}
	return nil
}

// secretRefs lists the SDS secrets a listener's TLS filter chains use.
// clusterSecretRefs lists the SDS secrets a cluster's upstream TLS uses
// (its client certificate): a proxy names them too.
func clusterSecretRefs(c *clusterv3.Cluster) ([]string, error) {
	tc := c.GetTransportSocket().GetTypedConfig()
	if tc == nil {
		return nil, nil
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if !tc.MessageIs(ctx) {
		return nil, nil
	}
	if err := tc.UnmarshalTo(ctx); err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	var out []string
	for _, sds := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
		out = append(out, sds.GetName())
	}
	return out, nil
}

func secretRefs(l *listenerv3.Listener) ([]string, error) {
	var out []string
	for i, fc := range l.GetFilterChains() {
		tc := fc.GetTransportSocket().GetTypedConfig()
		if tc == nil {
			continue
		}
		ctx := &tlsv3.DownstreamTlsContext{}
		if !tc.MessageIs(ctx) {
			continue
		}
		if err := tc.UnmarshalTo(ctx); err != nil {
			return nil, fmt.Errorf("filter_chains[%d].transport_socket: %w", i, err)
		}
		for _, sds := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
			out = append(out, sds.GetName())
		}
	}
	return out, nil
}
