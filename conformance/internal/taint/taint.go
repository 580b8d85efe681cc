package taint

import (
	"context"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// Publisher is a dataplane.Publisher over an xDS server. Set Armed to make
// every following publication one the proxy must reject; ArmedFilters to
// make the proxy reject only its RBAC filter configurations.
type Publisher struct {
	srv          *server.Server
	Armed        atomic.Bool
	ArmedFilters atomic.Bool
}

// New returns a disarmed Publisher publishing to srv.
func New(srv *server.Server) *Publisher { return &Publisher{srv: srv} }

// Publish translates cfg, taints the listeners when armed, and hands the
// result to the server.
func (p *Publisher) Publish(ctx context.Context, cfg *ir.Config) (dataplane.Publication, error) {
	res, err := translator.Translate(cfg)
	if err != nil {
		return dataplane.Publication{}, err
	}
	if p.Armed.Load() {
		for i, l := range res.Listeners {
			// A modified copy: the translator's object keeps its version,
			// the copy is versioned (and validated) by the server.
			l = proto.Clone(l).(*listenerv3.Listener)
			res.Listeners[i] = l
			for _, fc := range l.FilterChains {
				for _, f := range fc.Filters {
					if err := addTracing(f); err != nil {
						return dataplane.Publication{}, err
					}
				}
			}
		}
	}
	if p.ArmedFilters.Load() {
		for i, ext := range res.ExtensionConfigs {
			tainted, err := taintRBAC(ext)
			if err != nil {
				return dataplane.Publication{}, err
			}
			res.ExtensionConfigs[i] = tainted
		}
	}
	up, err := p.srv.Update(ctx, res)
	if err != nil {
		return dataplane.Publication{}, err
	}
	return publish.Publication(res, up), nil
}

var _ dataplane.Publisher = (*Publisher)(nil)

// Proxies reports the proxies connected to the server.
func (p *Publisher) Proxies() []dataplane.Proxy { return publish.New(p.srv).Proxies() }

// Changed is the server's change event.
func (p *Publisher) Changed() <-chan struct{} { return p.srv.Changed() }

func addTracing(f *listenerv3.Filter) error {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return err
	}
	hcm.Tracing = &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin"}}
	a, err := anypb.New(hcm)
	if err != nil {
		return err
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
	return nil
}

// taintRBAC returns a copy of an RBAC filter configuration with a field
// the builtin proxy does not implement; other configurations unchanged.
func taintRBAC(ext *corev3.TypedExtensionConfig) (*corev3.TypedExtensionConfig, error) {
	r := &rbacfilterv3.RBAC{}
	if !ext.GetTypedConfig().MessageIs(r) {
		return ext, nil
	}
	if err := ext.GetTypedConfig().UnmarshalTo(r); err != nil {
		return nil, err
	}
	r.ShadowRulesStatPrefix = "tainted_"
	a, err := anypb.New(r)
	if err != nil {
		return nil, err
	}
	return &corev3.TypedExtensionConfig{Name: ext.GetName(), TypedConfig: a}, nil
}
