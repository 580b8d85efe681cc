package envoyconfig

import (
	"fmt"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origsrcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	"google.golang.org/protobuf/types/known/anypb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The original-source switch of a config: Cilium 1.19 reads the
// annotation first and the label (what Cilium up to 1.18 reads, deprecated
// since) when the annotation is absent or not a boolean.
const (
	AnnotationOriginalSource = "cec.cilium.io/use-original-source-address"
	LabelOriginalSource      = "cilium.io/use-original-source-address"
)

const filterOriginalSrc = "envoy.filters.listener.original_src"

var typeOriginalSrc = "type.googleapis.com/" + string((&origsrcv3.OriginalSrc{}).ProtoReflect().Descriptor().FullName())

// originalSource decides, as Cilium does, whether a config's upstream
// connections keep the client's address: not for a config owned by an
// Ingress or a Gateway (what Cilium's controllers generate), else the
// annotation, else the label, else true. A value that is not a boolean
// (strconv.ParseBool) is passed over, as in Cilium; note says so, for the
// config's status.
func originalSource(meta *metav1.ObjectMeta) (keep bool, note string) {
	if meta == nil {
		return true, ""
	}
	for _, o := range meta.OwnerReferences {
		if o.Kind == "Ingress" || o.Kind == "Gateway" {
			return false, ""
		}
	}
	var notes string
	for _, kv := range []struct {
		what, key string
		m         map[string]string
	}{{"annotation", AnnotationOriginalSource, meta.Annotations}, {"label", LabelOriginalSource, meta.Labels}} {
		v, ok := kv.m[kv.key]
		if !ok {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err == nil {
			return b, notes
		}
		notes += fmt.Sprintf("; %s %s: %q is not a boolean and is ignored", kv.what, kv.key, v)
	}
	return true, notes
}

// withOriginalSource adds an original_src listener filter with mark to a
// TCP listener that has none; a UDP listener (its only listener filter is
// the udp_proxy) and one the user gave original_src already are left as
// they are.
func withOriginalSource(l *listenerv3.Listener, mark uint32) error {
	if l.GetAddress().GetSocketAddress().GetProtocol() == corev3.SocketAddress_UDP {
		return nil
	}
	for _, f := range l.GetListenerFilters() {
		if f.GetTypedConfig().GetTypeUrl() == typeOriginalSrc {
			return nil
		}
	}
	a, err := anypb.New(&origsrcv3.OriginalSrc{Mark: mark})
	if err != nil {
		return fmt.Errorf("adding original_src: %w", err)
	}
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{Name: filterOriginalSrc,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: a}})
	return nil
}

// originalSourceMessage is what an accepted config's status says of its
// upstream connections' source: never that the client's address is kept
// when this node cannot keep it. want: the config keeps it and has
// listeners Services are redirected to; inEffect: they got original_src.
func originalSourceMessage(want, inEffect bool, note string) string {
	var s string
	switch {
	case inEffect:
		s = "upstream connections keep the client's address (original source)"
	case want:
		s = "original source not in effect: this node's datapath does not steer replies back to the proxy " +
			"(agent without --datapath, or with --policy-original-source=false), so upstream connections come from the node; " +
			"set " + AnnotationOriginalSource + ": \"false\" to ask for that"
	default:
		s = "upstream connections come from the node (original source off, or no listener is a target of spec.services)"
	}
	return s + note
}
