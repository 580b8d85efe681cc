package flow

import (
	"net/netip"
	"strconv"
	"time"
)

// Verdicts.
const (
	Forwarded  = "FORWARDED"
	Dropped    = "DROPPED"
	Error      = "ERROR"
	Redirected = "REDIRECTED" // the datapath handed a connection to the proxy
)

// Protocols.
const (
	ProtocolHTTP  = "http"
	ProtocolGRPC  = "grpc"
	ProtocolKafka = "kafka"
	ProtocolTCP   = "tcp"
	// L3/L4 protocols of datapath events (TCP is ProtocolTCP).
	ProtocolUDP    = "udp"
	ProtocolICMP   = "icmp"
	ProtocolICMPv6 = "icmpv6"
	ProtocolSCTP   = "sctp"
)

// Datapath events (Datapath.Event).
const (
	EventDrop         = "drop"
	EventRedirect     = "redirect"
	EventAuthRequired = "auth-required"
)

// Flow is one judged request (or relayed connection).
type Flow struct {
	Time time.Time `json:"time"`
	// Node is the proxy that reported the flow.
	Node string `json:"node,omitempty"`
	// Listener is the proxy listener, e.g. "policy/ingress/http".
	Listener string `json:"listener,omitempty"`
	// Direction is "ingress" or "egress" relative to the local workload.
	Direction   string   `json:"direction,omitempty"`
	Source      Endpoint `json:"source"`
	Destination Endpoint `json:"destination"`
	Protocol    string   `json:"protocol"`
	Verdict     string   `json:"verdict"`
	// Policy names the rule that allowed the request; Reason says why it
	// was denied or failed.
	Policy  string        `json:"policy,omitempty"`
	Reason  string        `json:"reason,omitempty"`
	Latency time.Duration `json:"latencyNs,omitempty"`

	HTTP  *HTTP  `json:"http,omitempty"`
	GRPC  *GRPC  `json:"grpc,omitempty"`
	Kafka *Kafka `json:"kafka,omitempty"`

	// Datapath is set on L3/L4 events of the eBPF datapath (drops,
	// redirects to the proxy, auth-required drops), which carry no L7
	// fields; nil on the proxy's flows.
	Datapath *Datapath `json:"datapath,omitempty"`
}

// Datapath holds what an L3/L4 event of the datapath adds to a flow.
// Source and Destination are the packet's addresses (for ICMP the
// destination port is the ICMP type) and carry the identities the
// datapath judged with.
type Datapath struct {
	// Event is EventDrop, EventRedirect or EventAuthRequired.
	Event string `json:"event"`
	// Reason is the datapath's reason code (datapath/model.Reason, kept
	// as a number so that this package and its users, the xDS
	// access-log service among them, link nothing of the datapath); its
	// name is in Flow.Reason.
	Reason uint8 `json:"reason"`
	// IfIndex is the interface the packet was seen on; ProxyPort the
	// proxy listener a redirect went to.
	IfIndex   int    `json:"ifindex,omitempty"`
	ProxyPort uint16 `json:"proxyPort,omitempty"`
}

// Endpoint is one side of a flow.
type Endpoint struct {
	Address netip.AddrPort `json:"address"`
	// Identity is the security identity behind the address (0 unknown).
	Identity uint32 `json:"identity,omitempty"`
	// Workload is "namespace/name" of the Pod, when the address is one.
	Workload string `json:"workload,omitempty"`
	// Labels are the identity's labels ("source:key=value", sorted) when
	// the flow was recorded, as Hubble shows an endpoint's labels. The
	// slice is shared by every flow of the identity: never modify it.
	Labels []string `json:"labels,omitempty"`
}

// HTTP holds an HTTP request's fields.
type HTTP struct {
	Method    string `json:"method,omitempty"`
	Authority string `json:"authority,omitempty"`
	Path      string `json:"path,omitempty"`
	Status    int    `json:"status,omitempty"`
	// Version is "HTTP/1.1" or "HTTP/2".
	Version string `json:"version,omitempty"`
	// MissingHeaders and RejectedHeaders are what headerMatches with a
	// mismatch action noted ("name: value"; secrets read "[redacted]"):
	// headers the request lacked, and values it carried that a rule
	// removed or replaced.
	MissingHeaders  []string `json:"missingHeaders,omitempty"`
	RejectedHeaders []string `json:"rejectedHeaders,omitempty"`
}

// GRPC holds a gRPC call's fields.
type GRPC struct {
	Service string `json:"service,omitempty"`
	Method  string `json:"method,omitempty"`
	Status  int    `json:"status"`
}

// Kafka holds a Kafka request's fields.
type Kafka struct {
	APIKey        int      `json:"apiKey"`
	APIKeyName    string   `json:"apiKeyName,omitempty"`
	APIVersion    int      `json:"apiVersion"`
	CorrelationID int      `json:"correlationID"`
	ClientID      string   `json:"clientID,omitempty"`
	Topics        []string `json:"topics,omitempty"`
	ErrorCode     int      `json:"errorCode"`
	ErrorName     string   `json:"errorName,omitempty"`
}

// Summary renders the L7 part in one line, as Hubble's compact output
// does: "POST /v1/request-landing 403", "grpc.Echo/Say 7",
// "Produce v9 [events] TOPIC_AUTHORIZATION_FAILED"; for a datapath event
// the event and its reason: "drop policy-denied", "redirect to :15101".
func (f *Flow) Summary() string {
	switch {
	case f.Datapath != nil && f.Datapath.Event == EventRedirect:
		return "redirect to :" + strconv.Itoa(int(f.Datapath.ProxyPort))
	case f.Datapath != nil:
		return f.Datapath.Event + " " + f.Reason
	case f.GRPC != nil:
		return "/" + f.GRPC.Service + "/" + f.GRPC.Method + " status " + strconv.Itoa(f.GRPC.Status)
	case f.HTTP != nil:
		s := f.HTTP.Method + " " + f.HTTP.Path
		if f.HTTP.Status != 0 {
			s += " " + strconv.Itoa(f.HTTP.Status)
		}
		return s
	case f.Kafka != nil:
		s := f.Kafka.APIKeyName + " v" + strconv.Itoa(f.Kafka.APIVersion)
		if len(f.Kafka.Topics) > 0 {
			s += " " + listString(f.Kafka.Topics)
		}
		if f.Kafka.ErrorName != "" {
			s += " " + f.Kafka.ErrorName
		}
		return s
	}
	return ""
}

func listString(xs []string) string {
	s := "["
	for i, x := range xs {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s + "]"
}
