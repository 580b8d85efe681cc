package envoyconfig

import (
	"fmt"
	"net/netip"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodemesh/nodemesh/mesh/appprotocol"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// The Service annotations of proxy load balancing (Cilium's names).
const (
	AnnotationLBL7          = "service.cilium.io/lb-l7"
	AnnotationLBL7Algorithm = "service.cilium.io/lb-l7-algorithm"
)

// KindService is the kind of the Object of a Service's proxy load
// balancing.
const KindService = "Service"

// lbL7Enabled reads the lb-l7 annotation: "enabled", or "envoy" as older
// Cilium releases wrote it; anything else (including "disabled") is off.
func lbL7Enabled(svc *corev1.Service) bool {
	v := svc.Annotations[AnnotationLBL7]
	return v == "enabled" || v == "envoy"
}

// lbPolicies maps lb-l7-algorithm values to Envoy's policies; unset is
// round_robin, Cilium's default for loadBalancer.l7.algorithm.
var lbPolicies = map[string]clusterv3.Cluster_LbPolicy{
	"":              clusterv3.Cluster_ROUND_ROBIN,
	"round_robin":   clusterv3.Cluster_ROUND_ROBIN,
	"least_request": clusterv3.Cluster_LEAST_REQUEST,
	"random":        clusterv3.Cluster_RANDOM,
}

// serviceLB sends the traffic of a Service annotated lb-l7 through the
// proxy, which balances every request (not every connection) over the
// Service's ready endpoints: gRPC calls multiplexed on one connection
// spread over the backends. Per TCP port, it is a listener of its own
// (an address-less one: ListenAddress and a port from the range), a
// route table forwarding everything without a timeout (the Service had
// none), and an EDS cluster over "<namespace>/<name>:<port>" that speaks
// h2c to the backends when the port says it takes HTTP/2 or gRPC
// (mesh/appprotocol, as Gateway API routes read it), HTTP/1.1
// otherwise. A port a CiliumEnvoyConfig already takes
// over stays with it.
func (t *translation) serviceLB(svc *corev1.Service) {
	k := input.Key{Namespace: svc.Namespace, Name: svc.Name}
	obj := Object{Kind: KindService, Namespace: svc.Namespace, Name: svc.Name}
	st := Status{Object: obj, Generation: svc.Generation}
	alg := svc.Annotations[AnnotationLBL7Algorithm]
	lb, ok := lbPolicies[alg]
	var redirects []Redirect
	if !ok {
		st.Reason = ReasonInvalid
		st.Message = fmt.Sprintf("annotation %s: %q is none of round_robin, least_request, random", AnnotationLBL7Algorithm, alg)
	}
	if t.opts.CannotRedirect {
		ok = false
		st.Reason = ReasonNotRedirected
		st.Message = fmt.Sprintf("annotation %s: this node cannot send a Service's traffic to the proxy (its agent has no datapath Service table: run it with --datapath-cgroup); the Service is balanced per connection as before", AnnotationLBL7)
	}
	for _, sp := range servicePorts(svc, nil) {
		port := uint16(sp.Port)
		if other, taken := t.claimed[svcPort{k, port}]; taken {
			if st.Message == "" {
				st.Message = fmt.Sprintf("port %d is taken over by %s", port, other)
			}
			continue
		}
		rd := Redirect{Owner: obj, Service: k, Ports: []uint16{port}}
		if !ok {
			rd.Refused = true
			redirects = append(redirects, rd)
			continue
		}
		name := ir.ServiceLBNamePrefix + k.Namespace + "/" + k.Name + "/" + strconv.Itoa(int(port))
		res, bind, err := t.serviceLBResources(name, edsName{svc: k, port: strconv.Itoa(int(port))}, lb, appprotocol.H2C(sp.AppProtocol, sp.Name))
		if err != nil {
			st.Reason, st.Message = ReasonInvalid, err.Error()
			rd.Refused = true
			redirects = append(redirects, rd)
			continue
		}
		t.out.Resources = append(t.out.Resources, res...)
		rd.Listener, rd.Bind = name, bind
		redirects = append(redirects, rd)
		t.claimed[svcPort{k, port}] = obj
	}
	if st.Reason == "" {
		st.Valid, st.Reason = true, ReasonAccepted
		if t.opts.OriginalSourceMark != 0 {
			st.Message = originalSourceMessage(true, true, "")
		}
	}
	t.out.Redirects = append(t.out.Redirects, redirects...)
	t.out.Statuses = append(t.out.Statuses, st)
}

func (t *translation) serviceLBResources(name string, eds edsName, lb clusterv3.Cluster_LbPolicy, h2 bool) ([]*ir.Resource, netip.AddrPort, error) {
	if !t.opts.ListenAddress.IsValid() {
		return nil, netip.AddrPort{}, fmt.Errorf("this node has no address for the proxy's load-balancing listeners")
	}
	bind, free := t.freePort(name)
	if !free {
		return nil, netip.AddrPort{}, fmt.Errorf("every port of %d-%d is taken", t.opts.FirstPort, t.opts.LastPort)
	}
	router, _ := anypb.New(&routerv3.Router{})
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: statSafe(name),
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: name, ConfigSource: ads()}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: filterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return nil, bind, err
	}
	l := &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: bind.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(bind.Port())}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: filterHCM, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}},
	}
	// As a configuration the user writes would (Cilium's default for
	// configs no Ingress or Gateway owns): the backends judge the client.
	if m := t.opts.OriginalSourceMark; m != 0 {
		if err := withOriginalSource(l, m); err != nil {
			return nil, bind, err
		}
	}
	rc := &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: "lb-l7", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
				Timeout:          durationpb.New(0),
			}},
		}},
	}}}
	explicit := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
		HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}
	if h2 {
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}
	}
	hpo, err := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: explicit}})
	if err != nil {
		return nil, bind, err
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: eds.String()},
		ConnectTimeout:       durationpb.New(5e9),
		LbPolicy:             lb,
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": hpo},
	}
	if m := t.opts.UpstreamMark; m != 0 {
		if err := withUpstreamMark(c, m); err != nil {
			return nil, bind, err
		}
	}
	var out []*ir.Resource
	for _, m := range []proto.Message{l, rc, c} {
		if err := validate(m); err != nil {
			return nil, bind, fmt.Errorf("%s %q: %w", kindOf(m), name, err)
		}
		if err := builtinProxyRuns(m); err != nil {
			return nil, bind, fmt.Errorf("the builtin proxy cannot run %s %q: %w", kindOf(m), name, err)
		}
		var b netip.AddrPort
		if m == proto.Message(l) {
			b = bind
		}
		r, err := newResource(m, b)
		if err != nil {
			return nil, bind, err
		}
		out = append(out, r)
	}
	if t.eds[eds.String()] == nil {
		cla, err := t.svcs.loadAssignment(eds, nil)
		if err != nil {
			return nil, bind, err
		}
		t.eds[eds.String()] = cla
	}
	return out, bind, nil
}

// statSafe makes a stat prefix of a name: stats use '.' as a separator.
func statSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
