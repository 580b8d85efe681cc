package observer

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/flow"
	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
)

// Cilium's monitor message types (CiliumEventType.type), which Hubble's
// --type filter and printers use.
const (
	messageTypeDrop      = 1
	messageTypeTrace     = 4
	messageTypeAccessLog = 129
	// traceToProxy is the trace sub-type of a packet handed to the proxy.
	traceToProxy = 1
)

// dropReasons maps the datapath's reasons to Cilium's drop reason codes
// (flow.DropReason) with the same meaning.
var dropReasons = map[model.Reason]flowpb.DropReason{
	model.DropPolicy:           flowpb.DropReason_POLICY_DENIED,
	model.DropPolicyDeny:       flowpb.DropReason_POLICY_DENY,
	model.DropAuthRequired:     flowpb.DropReason_AUTH_REQUIRED,
	model.DropInvalid:          flowpb.DropReason_INVALID_PACKET_DROPPED,
	model.DropSpoofedSource:    flowpb.DropReason_INVALID_SOURCE_IP,
	model.DropFragUnknown:      flowpb.DropReason_FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND,
	model.DropProxyUnavailable: flowpb.DropReason_SOCKET_LOOKUP_FAILED,
	model.DropProxyUnsupported: flowpb.DropReason_PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL,
	model.DropCTFull:           flowpb.DropReason_CT_MAP_INSERTION_FAILED,
	model.DropProxyAssign:      flowpb.DropReason_SOCKET_ASSIGN_FAILED,
	// Cilium's "Is a ClusterIP": a packet still addressed to a Service
	// frontend that no translation rewrote.
	model.DropServiceFrontend: flowpb.DropReason_IS_A_CLUSTERIP,
	// The L7 rules that would have to judge it cannot see its identity:
	// no policy decision can be taken for it.
	model.DropRouteIdentity: flowpb.DropReason_NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION,
}

// DropReason returns Cilium's code for a datapath drop reason
// (DROP_REASON_UNKNOWN for a reason that is not a drop).
func DropReason(r model.Reason) flowpb.DropReason { return dropReasons[r] }

var verdicts = map[string]flowpb.Verdict{
	flow.Forwarded:  flowpb.Verdict_FORWARDED,
	flow.Dropped:    flowpb.Verdict_DROPPED,
	flow.Error:      flowpb.Verdict_ERROR,
	flow.Redirected: flowpb.Verdict_REDIRECTED,
}

// Proto converts f into Hubble's flow as seen on node. It never fails: a
// field f does not carry stays unset.
func Proto(f *flow.Flow, node string) *flowpb.Flow {
	out := &flowpb.Flow{
		Verdict:     verdicts[f.Verdict],
		NodeName:    node,
		Source:      endpoint(f.Source),
		Destination: endpoint(f.Destination),
	}
	if !f.Time.IsZero() {
		out.Time = timestamppb.New(f.Time)
	}
	switch f.Direction {
	case "ingress":
		out.TrafficDirection = flowpb.TrafficDirection_INGRESS
	case "egress":
		out.TrafficDirection = flowpb.TrafficDirection_EGRESS
	}
	out.IP = ip(f.Source.Address.Addr(), f.Destination.Address.Addr())
	out.L4 = l4(f)
	if f.Datapath != nil {
		datapathFields(out, f)
		return out
	}
	out.Type = flowpb.FlowType_L7
	// One record per request, seen from the client: never a reply (the
	// CLI draws "->" from source to destination).
	out.IsReply = wrapperspb.Bool(false)
	out.EventType = &flowpb.CiliumEventType{Type: messageTypeAccessLog}
	out.L7 = l7(f)
	out.Summary = f.Summary()
	if p := policy(f.Policy); p != nil {
		switch {
		case out.Verdict == flowpb.Verdict_DROPPED && out.TrafficDirection == flowpb.TrafficDirection_EGRESS:
			out.EgressDeniedBy = []*flowpb.Policy{p}
		case out.Verdict == flowpb.Verdict_DROPPED:
			out.IngressDeniedBy = []*flowpb.Policy{p}
		case out.TrafficDirection == flowpb.TrafficDirection_EGRESS:
			out.EgressAllowedBy = []*flowpb.Policy{p}
		default:
			out.IngressAllowedBy = []*flowpb.Policy{p}
		}
	}
	return out
}

func datapathFields(out *flowpb.Flow, f *flow.Flow) {
	d := f.Datapath
	out.Type = flowpb.FlowType_L3_L4
	out.Summary = strings.ToUpper(f.Protocol)
	// Policy, auth and proxy decisions are taken on a connection's first
	// packet, so those events are never replies; for the other drops
	// (malformed, spoofed, …) the datapath does not say.
	switch model.Reason(d.Reason) {
	case model.ReasonRedirected, model.DropPolicy, model.DropPolicyDeny, model.DropAuthRequired,
		model.DropProxyUnavailable, model.DropProxyUnsupported, model.DropProxyAssign, model.DropServiceFrontend,
		model.DropRouteIdentity:
		out.IsReply = wrapperspb.Bool(false)
	}
	if d.IfIndex > 0 {
		out.Interface = &flowpb.NetworkInterface{Index: uint32(d.IfIndex)}
	}
	switch d.Event {
	case flow.EventRedirect:
		out.EventType = &flowpb.CiliumEventType{Type: messageTypeTrace, SubType: traceToProxy}
		out.TraceObservationPoint = flowpb.TraceObservationPoint_TO_PROXY
		out.ProxyPort = uint32(d.ProxyPort)
	default: // drops, auth-required drops among them
		code := DropReason(model.Reason(d.Reason))
		out.EventType = &flowpb.CiliumEventType{Type: messageTypeDrop, SubType: int32(code)}
		out.DropReason = uint32(code)
		out.DropReasonDesc = code
	}
}

func endpoint(e flow.Endpoint) *flowpb.Endpoint {
	out := &flowpb.Endpoint{Identity: e.Identity}
	if ns, name, ok := strings.Cut(e.Workload, "/"); ok {
		out.Namespace, out.PodName = ns, name
	}
	switch name, ok := model.ReservedName(model.Identity(e.Identity)); {
	case len(e.Labels) > 0:
		out.Labels = slices.Clone(e.Labels)
	case ok && e.Identity != 0:
		out.Labels = []string{"reserved:" + name}
	}
	return out
}

func ip(src, dst netip.Addr) *flowpb.IP {
	if !src.IsValid() || !dst.IsValid() {
		return nil
	}
	out := &flowpb.IP{Source: src.Unmap().String(), Destination: dst.Unmap().String(), IpVersion: flowpb.IPVersion_IPv4}
	if src.Unmap().Is6() {
		out.IpVersion = flowpb.IPVersion_IPv6
	}
	return out
}

func l4(f *flow.Flow) *flowpb.Layer4 {
	sp, dp := uint32(f.Source.Address.Port()), uint32(f.Destination.Address.Port())
	switch f.Protocol {
	case flow.ProtocolUDP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: sp, DestinationPort: dp}}}
	case flow.ProtocolSCTP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: sp, DestinationPort: dp}}}
	case flow.ProtocolICMP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: dp}}}
	case flow.ProtocolICMPv6:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv6{ICMPv6: &flowpb.ICMPv6{Type: dp}}}
	case "":
		return nil
	}
	// TCP, and every L7 protocol the proxy speaks runs over TCP.
	return &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: sp, DestinationPort: dp}}}
}

// l7 renders the proxy's fields. Hubble has no gRPC record: like
// Cilium, a gRPC call is an HTTP/2 request whose path is
// /<service>/<method>, with its status in a grpc-status header. A request
// the proxy denied is a REQUEST record (Cilium's "http-request DROPPED")
// that still carries the status the proxy answered with, so
// --http-status finds it; every other HTTP flow is a RESPONSE. Kafka
// flows are REQUEST records, as Cilium's Kafka proxy logs them.
func l7(f *flow.Flow) *flowpb.Layer7 {
	out := &flowpb.Layer7{Type: flowpb.L7FlowType_REQUEST, LatencyNs: uint64(max(f.Latency, 0))}
	switch {
	case f.HTTP != nil:
		h := f.HTTP
		rec := &flowpb.HTTP{Code: uint32(max(h.Status, 0)), Method: h.Method, Protocol: h.Version}
		path := h.Path
		if f.GRPC != nil {
			if path == "" {
				path = "/" + f.GRPC.Service + "/" + f.GRPC.Method
			}
			if rec.Method == "" {
				rec.Method = "POST"
			}
			if rec.Protocol == "" {
				rec.Protocol = "HTTP/2"
			}
			rec.Headers = append(rec.Headers, &flowpb.HTTPHeader{Key: "grpc-status", Value: strconv.Itoa(f.GRPC.Status)})
		}
		rec.Url = "http://" + h.Authority + path
		for _, m := range h.MissingHeaders {
			rec.Headers = append(rec.Headers, header("missing", m))
		}
		for _, m := range h.RejectedHeaders {
			rec.Headers = append(rec.Headers, header("rejected", m))
		}
		if f.Verdict != flow.Dropped && rec.Code != 0 {
			out.Type = flowpb.L7FlowType_RESPONSE
		}
		out.Record = &flowpb.Layer7_Http{Http: rec}
	case f.Kafka != nil:
		k := f.Kafka
		rec := &flowpb.Kafka{ErrorCode: int32(k.ErrorCode), ApiVersion: int32(k.APIVersion), ApiKey: strings.ToLower(k.APIKeyName),
			CorrelationId: int32(k.CorrelationID)}
		if len(k.Topics) > 0 {
			// Hubble's record has one topic; the rest are in Summary.
			rec.Topic = k.Topics[0]
		}
		out.Record = &flowpb.Layer7_Kafka{Kafka: rec}
	}
	return out
}

// header renders a header a headerMatches rule noted ("name: value") as
// an HTTP header of the record, its key prefixed with what happened to it.
func header(what, nv string) *flowpb.HTTPHeader {
	name, value, _ := strings.Cut(nv, ":")
	return &flowpb.HTTPHeader{Key: what + ":" + strings.TrimSpace(name), Value: strings.TrimSpace(value)}
}

// policy parses the proxy's rule names ("cnp/<ns>/<name>/…",
// "ccnp/<name>/…", "knp/<ns>/<name>/…") into Hubble's policy reference.
func policy(s string) *flowpb.Policy {
	parts := strings.Split(s, "/")
	switch {
	case len(parts) >= 3 && parts[0] == "cnp":
		return &flowpb.Policy{Kind: "CiliumNetworkPolicy", Namespace: parts[1], Name: parts[2]}
	case len(parts) >= 3 && parts[0] == "knp":
		return &flowpb.Policy{Kind: "NetworkPolicy", Namespace: parts[1], Name: parts[2]}
	case len(parts) >= 2 && parts[0] == "ccnp":
		return &flowpb.Policy{Kind: "CiliumClusterwideNetworkPolicy", Name: parts[1]}
	}
	return nil
}
