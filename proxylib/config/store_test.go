package config_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/config"
	"github.com/nodemesh/nodemesh/proxylib/hcm"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCloseStopsWarming: a listener waiting for its route configuration is
// activated when the initial fetch timeout passes, but not once the store
// is closed (the proxy closes it before its listeners when it stops).
func TestCloseStopsWarming(t *testing.T) {
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion: corev3.ApiVersion_V3}
	h := &hcmv3.HttpConnectionManager{StatPrefix: "x",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "missing", ConfigSource: ads}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}}}
	l := &listenerv3.Listener{Name: "l",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}}}}}
	for _, closed := range []bool{false, true} {
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		var s *config.Store
		lm := listener.New(func(n string) *tls.Certificate { return s.Cert(n) }, listener.WithSockets(1), listener.WithLogger(logger))
		um := upstream.NewManager(nil)
		s = config.New(hcm.NewRuntime("127.0.0.1", logger), lm, um, config.WithInitialFetchTimeout(50*time.Millisecond), config.WithLogger(logger))
		if err := s.Update(resource.ListenerType, "1", []*anypb.Any{mustAny(t, l)}, nil, true); err != nil {
			t.Fatal(err)
		}
		if n := len(lm.Addresses()); n != 0 {
			t.Fatalf("listener serves before its routes arrived or the fetch timeout passed (%d serving)", n)
		}
		if closed {
			s.Close()
		}
		time.Sleep(300 * time.Millisecond)
		if serving := len(lm.Addresses()) == 1; serving == closed {
			t.Errorf("closed=%v: listener serving=%v after the initial fetch timeout, want %v", closed, serving, !closed)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		lm.Close(ctx)
		cancel()
		um.Close()
	}
}

// TestReadyOnEmptyConfiguration: a control plane with nothing to serve
// answers with no listeners and no clusters; that is a complete initial
// configuration, so the proxy turns ready (it used to stay not ready until
// some listener or cluster arrived).
func TestReadyOnEmptyConfiguration(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var s *config.Store
	lm := listener.New(func(n string) *tls.Certificate { return s.Cert(n) }, listener.WithSockets(1), listener.WithLogger(logger))
	um := upstream.NewManager(nil)
	s = config.New(hcm.NewRuntime("127.0.0.1", logger), lm, um, config.WithLogger(logger))
	defer func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		lm.Close(ctx)
		um.Close()
	}()
	if s.Ready() {
		t.Fatal("ready before any configuration")
	}
	if err := s.Update(resource.ListenerType, "1", nil, nil, true); err != nil {
		t.Fatal(err)
	}
	if s.Ready() {
		t.Fatal("ready with listeners but before clusters were received")
	}
	if err := s.Update(resource.ClusterType, "1", nil, nil, true); err != nil {
		t.Fatal(err)
	}
	if !s.Ready() {
		t.Fatal("not ready after empty listener and cluster responses")
	}
}
