package taint

import (
	"context"
	"sync/atomic"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// Publisher is a dataplane.Publisher over an xDS server. Set Armed to make
// every following publication one the proxy must reject.
type Publisher struct {
	srv   *server.Server
	Armed atomic.Bool
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
		for _, l := range res.Listeners {
			for _, fc := range l.FilterChains {
				for _, f := range fc.Filters {
					if err := addTracing(f); err != nil {
						return dataplane.Publication{}, err
					}
				}
			}
		}
	}
	up, err := p.srv.Update(ctx, res)
	if err != nil {
		return dataplane.Publication{}, err
	}
	return publish.Publication(res, up), nil
}

// Proxies reports the proxies connected to the server.
func (p *Publisher) Proxies() []dataplane.Proxy { return publish.New(p.srv).Proxies() }

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
