package resource

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ResourceError names the resource a NACK reason belongs to.
type ResourceError struct {
	Kind string // "listener", "route configuration", "cluster", ...
	Name string
	Err  error
}

func (e *ResourceError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Kind, e.Name, e.Err)
}

func (e *ResourceError) Unwrap() error { return e.Err }

// validator is the generated protoc-gen-validate interface.
type validator interface{ ValidateAll() error }

// unpack unmarshals a into msg, checks the allowlist and Envoy's own
// validation rules. It returns the resource name via nameOf.
func unpack(a *anypb.Any, typeURL string, msg proto.Message) error {
	if a.GetTypeUrl() != typeURL {
		return fmt.Errorf("unexpected type %q in a %s response", a.GetTypeUrl(), typeURL)
	}
	if err := proto.Unmarshal(a.GetValue(), msg); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	return nil
}

func check(msg proto.Message) error {
	if err := checkAllowed(msg.ProtoReflect(), nil); err != nil {
		return err
	}
	if v, ok := msg.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("validating: %w", err)
		}
	}
	return nil
}

func duration(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

// socketAddress returns "ip:port" for an IP literal TCP address.
func socketAddress(a *corev3.Address, p path) (string, error) {
	if proto := a.GetSocketAddress().GetProtocol(); proto != corev3.SocketAddress_TCP {
		return "", fieldErr(append(p, "socket_address", "protocol"), "only TCP here (UDP only on listeners)")
	}
	if a.GetSocketAddress().GetIpv4Compat() {
		return "", fieldErr(append(p, "socket_address", "ipv4_compat"), "only on listeners")
	}
	return ipPort(a, p)
}

// ipPort returns "ip:port" for an IP literal address of any protocol.
func ipPort(a *corev3.Address, p path) (string, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", fieldErr(p, "socket_address is required")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return "", fieldErr(append(p, "socket_address", "address"), "%q is not an IP address", sa.GetAddress())
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue())).String(), nil
}

// adsSource checks a ConfigSource is `ads: {}` with resource_api_version V3.
func adsSource(cs *corev3.ConfigSource, p path) error {
	if cs.GetAds() == nil {
		return fieldErr(p, "config source must be ads")
	}
	if cs.GetResourceApiVersion() != corev3.ApiVersion_V3 {
		return fieldErr(append(p, "resource_api_version"), "must be V3")
	}
	return nil
}

// headerOps compiles request/response header additions and removals.
func headerOps(adds []*corev3.HeaderValueOption, removes []string, p path, addField, removeField string, m mutationBuilder) error {
	for i, n := range removes {
		ln := strings.ToLower(n)
		if !modifiable(ln) {
			return fieldErr(append(p, removeField, "["+strconv.Itoa(i)+"]"), "header %q may not be removed", n)
		}
		m.remove(ln)
	}
	for i, o := range adds {
		fp := append(p, addField, "["+strconv.Itoa(i)+"]")
		name := strings.ToLower(o.GetHeader().GetKey())
		if !modifiable(name) {
			return fieldErr(append(fp, "header", "key"), "header %q may not be modified", o.GetHeader().GetKey())
		}
		v, err := literalValue(o.GetHeader().GetValue())
		if err != nil {
			return fieldErr(append(fp, "header", "value"), "%v", err)
		}
		if v == "" {
			// keep_empty_value defaults to false: Envoy drops empty values.
			continue
		}
		m.add(name, v, uint8(o.GetAppendAction()))
	}
	return nil
}

// modifiable mirrors Envoy: pseudo-headers and host cannot be edited by
// header add/remove lists.
func modifiable(name string) bool {
	return name != "" && name[0] != ':' && name != "host"
}

// literalValue interprets Envoy's header value format: "%%" is a literal
// percent sign; any other "%COMMAND%" substitution is not supported.
func literalValue(v string) (string, error) {
	if strings.IndexByte(v, '%') < 0 {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		end := strings.IndexByte(v[i+1:], '%')
		if end < 0 {
			return "", errors.New("unterminated %-expression (write %% for a literal percent sign)")
		}
		return "", fmt.Errorf("substitution %q not supported by nodemesh-proxy", v[i:i+end+2])
	}
	return b.String(), nil
}
