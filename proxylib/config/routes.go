package config

import (
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// A RouteConfiguration carries every route of a listener; a control plane
// changes one route at a time. Decoding (the allowlist walk, Envoy's
// validation, compiling matchers) is therefore done per virtual host: a
// new version of a RouteConfiguration decodes only the virtual hosts whose
// serialized bytes the previous version did not hold, and keeps the
// decoded virtual hosts of the others (decoded values are immutable).
//
// The result is exactly what decoding the whole resource gives: its own
// fields are decoded from the resource without its virtual hosts, each
// new virtual host from the resource's own fields and that one virtual
// host (neither the allowlist nor Envoy's validation has a rule about the
// list of virtual hosts as such), and domains are checked for uniqueness
// across all of them. Whenever any of that fails, the whole resource is
// decoded, so a rejection carries the error a whole decode gives.

// vhostField is RouteConfiguration.virtual_hosts.
var vhostField = (&routev3.RouteConfiguration{}).ProtoReflect().Descriptor().Fields().ByName("virtual_hosts").Number()

// vhostKey identifies a virtual host by its serialized bytes: a part of
// the string of the whole resource's bytes the store keeps anyway, so
// keys copy nothing.
type vhostKey string

// decodeRoutes decodes a RouteConfiguration; raw is its bytes as a
// string. prev holds the current entries of the type, by name: the
// previous version's decoded virtual hosts are reused. It returns the
// resource's name, its decoded form and the decoded virtual hosts by
// key, for the next version.
func decodeRoutes(a *anypb.Any, raw string, prev map[string]*entry) (string, *resource.RouteConfig, map[vhostKey]*resource.VirtualHost, error) {
	shell, vhosts, ok := splitRoutes(a.GetValue(), raw)
	if !ok || a.GetTypeUrl() != resource.RouteType {
		return decodeWhole(a, vhosts)
	}
	own, err := resource.DecodeRouteConfig(&anypb.Any{TypeUrl: a.GetTypeUrl(), Value: shell})
	if err != nil || len(own.VirtualHosts) != 0 {
		return decodeWhole(a, vhosts)
	}
	var known map[vhostKey]*resource.VirtualHost
	if e := prev[own.Name]; e != nil {
		known = e.vhosts
	}
	if known == nil {
		// Nothing to reuse: decoding whole is as fast.
		return decodeWhole(a, vhosts)
	}
	out := &resource.RouteConfig{Name: own.Name, IgnorePort: own.IgnorePort, VirtualHosts: make([]*resource.VirtualHost, 0, len(vhosts))}
	next := make(map[vhostKey]*resource.VirtualHost, len(vhosts))
	domains := map[string]bool{}
	for _, k := range vhosts {
		vh := known[k]
		if vh == nil {
			one := protowire.AppendTag(slices.Clip(shell), vhostField, protowire.BytesType)
			one = protowire.AppendBytes(one, []byte(k))
			rc, err := resource.DecodeRouteConfig(&anypb.Any{TypeUrl: a.GetTypeUrl(), Value: one})
			if err != nil || len(rc.VirtualHosts) != 1 {
				return decodeWhole(a, vhosts)
			}
			vh = rc.VirtualHosts[0]
		}
		for _, d := range vh.Domains {
			if domains[d] {
				return decodeWhole(a, vhosts)
			}
			domains[d] = true
		}
		next[k] = vh
		out.VirtualHosts = append(out.VirtualHosts, vh)
	}
	return out.Name, out, next, nil
}

// decodeWhole decodes a RouteConfiguration whole; vhosts, when they are
// its virtual hosts' bytes, key the decoded virtual hosts for the next
// version.
func decodeWhole(a *anypb.Any, vhosts []vhostKey) (string, *resource.RouteConfig, map[vhostKey]*resource.VirtualHost, error) {
	rc, err := resource.DecodeRouteConfig(a)
	if err != nil {
		return "", nil, nil, err
	}
	var byKey map[vhostKey]*resource.VirtualHost
	if len(vhosts) == len(rc.VirtualHosts) {
		byKey = make(map[vhostKey]*resource.VirtualHost, len(vhosts))
		for i, k := range vhosts {
			byKey[k] = rc.VirtualHosts[i]
		}
	}
	return rc.Name, rc, byKey, nil
}

// splitRoutes splits a serialized RouteConfiguration, b (raw as a
// string), into its own fields (everything but the virtual hosts, in
// order) and each virtual host's bytes, as parts of raw. ok is false when
// the bytes are not well-formed.
func splitRoutes(b []byte, raw string) (shell []byte, vhosts []vhostKey, ok bool) {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return nil, nil, false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return nil, nil, false
		}
		if num == vhostField && typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(b[off+n:])
			if k < 0 {
				return nil, nil, false
			}
			start := off + n + k - len(v)
			vhosts = append(vhosts, vhostKey(raw[start:start+len(v)]))
		} else {
			shell = append(shell, b[off:off+n+m]...)
		}
		off += n + m
	}
	return shell, vhosts, true
}
