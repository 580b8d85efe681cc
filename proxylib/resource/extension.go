package resource

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	headermatchv1 "github.com/nodemesh/nodemesh/proxylib/api/headermatch/v1"
	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

// DecodeExtension decodes and validates an ECDS TypedExtensionConfig
// holding an RBAC filter, a Kafka policy or a header match policy.
func DecodeExtension(a *anypb.Any) (*Extension, error) {
	var tc corev3.TypedExtensionConfig
	if err := unpack(a, ExtensionConfigType, &tc); err != nil {
		return nil, &ResourceError{Kind: "extension config", Err: err}
	}
	out, err := decodeExtension(&tc)
	if err != nil {
		return nil, &ResourceError{Kind: "extension config", Name: tc.GetName(), Err: err}
	}
	return out, nil
}

func decodeExtension(tc *corev3.TypedExtensionConfig) (*Extension, error) {
	if tc.GetName() == "" {
		return nil, fieldErr(path{"name"}, "must not be empty")
	}
	if err := check(tc); err != nil {
		return nil, err
	}
	out := &Extension{Name: tc.GetName(), TypeURL: tc.GetTypedConfig().GetTypeUrl()}
	switch out.TypeURL {
	case RBACTypeURL:
		var r rbacfilterv3.RBAC
		if err := tc.GetTypedConfig().UnmarshalTo(&r); err != nil {
			return nil, fieldErr(path{"typed_config"}, "decoding: %v", err)
		}
		if err := r.ValidateAll(); err != nil {
			return nil, fieldErr(path{"typed_config(RBAC)"}, "validating: %v", err)
		}
		d, err := decodeRBAC(&r, path{"typed_config(RBAC)"})
		if err != nil {
			return nil, err
		}
		out.RBAC = d
	case KafkaTypeURL:
		var k kafkav1.KafkaPolicy
		if err := tc.GetTypedConfig().UnmarshalTo(&k); err != nil {
			return nil, fieldErr(path{"typed_config"}, "decoding: %v", err)
		}
		d, err := decodeKafka(&k, path{"typed_config(KafkaPolicy)"})
		if err != nil {
			return nil, err
		}
		out.Kafka = d
	case HeaderMatchTypeURL:
		var h headermatchv1.HeaderMatchPolicy
		if err := tc.GetTypedConfig().UnmarshalTo(&h); err != nil {
			return nil, fieldErr(path{"typed_config"}, "decoding: %v", err)
		}
		d, err := decodeHeaderMatch(&h, path{"typed_config(HeaderMatchPolicy)"})
		if err != nil {
			return nil, err
		}
		out.HeaderMatch = d
	default:
		return nil, fieldErr(path{"typed_config"}, "type %q not supported by nodemesh-proxy", out.TypeURL)
	}
	return out, nil
}

// extensionRef decodes a filter's config_discovery.
func extensionRef(cd *corev3.ExtensionConfigSource, name string, allowed []string, p path) (*ExtensionRef, error) {
	if err := adsSource(cd.GetConfigSource(), append(p, "config_source")); err != nil {
		return nil, err
	}
	if len(cd.GetTypeUrls()) == 0 {
		return nil, fieldErr(append(p, "type_urls"), "at least one type URL is required")
	}
	for i, t := range cd.GetTypeUrls() {
		ok := false
		for _, a := range allowed {
			ok = ok || a == t
		}
		if !ok {
			return nil, fieldErr(append(p, "type_urls", "["+itoa(i)+"]"), "type %q not supported by nodemesh-proxy for filter %q", t, name)
		}
	}
	return &ExtensionRef{Name: name, TypeURLs: cd.GetTypeUrls()}, nil
}
