// Package l7meta is the schema of the L7 fields the builtin proxy attaches
// to every access-log entry it sends over Envoy's AccessLogService: dynamic
// metadata in common_properties.metadata.filter_metadata[Namespace], a
// google.protobuf.Struct with the keys below. The agent's flow store reads
// them; nothing here depends on Envoy or the proxy.
//
// HTTP and gRPC entries (HTTPAccessLogEntry, one per request) carry method,
// authority, path and status in the entry's own fields and add Protocol,
// Verdict, Policy and, for gRPC, the gRPC keys. Kafka entries
// (TCPAccessLogEntry, one per Kafka request, sent when its response passed
// or when it was denied) carry everything L7 here; the connection-level
// entry the tcp_proxy logs at close carries Protocol "tcp" only.
package l7meta

// Namespace is the filter_metadata key holding the L7 fields.
const Namespace = "nodemesh.l7"

// Keys of the Struct.
const (
	// Protocol is "http", "grpc", "kafka" or "tcp".
	Protocol = "protocol"
	// Verdict is one of the Verdict* values.
	Verdict = "verdict"
	// Policy names the policy that allowed the request (an RBAC policy
	// name or a Kafka rule name); absent when denied or when no policy
	// applies.
	Policy = "policy"
	// Reason says why a request was denied or failed, e.g.
	// "rbac_access_denied", "topic_not_allowed", "api_key_not_allowed",
	// "unknown_destination".
	Reason = "reason"
	// SourceIdentity is the source identity (a number) the datapath
	// judged the connection with, as a policy listener with the datapath
	// identity filter read it from connection tracking; absent
	// elsewhere. It names the peer the verdict was made for: a Gateway's
	// connection from the node's address is ingress, not host.
	SourceIdentity = "source_identity"

	// MissingHeaders and RejectedHeaders are what the header match
	// filter noted on an HTTP request (Cilium's headerMatches mismatch
	// actions): headers it lacked (with the expected value) and headers
	// it carried with a value the rule rejected, each "name: value"
	// (lists of strings; secret values read "[redacted]").
	MissingHeaders  = "missing_headers"
	RejectedHeaders = "rejected_headers"

	// GRPCService and GRPCMethod split the request path /pkg.Service/Method.
	GRPCService = "grpc_service"
	GRPCMethod  = "grpc_method"
	// GRPCStatus is the grpc-status code (a number) of the response.
	GRPCStatus = "grpc_status"

	KafkaAPIKey        = "kafka_api_key"        // number
	KafkaAPIKeyName    = "kafka_api_key_name"   // e.g. "Produce"
	KafkaAPIVersion    = "kafka_api_version"    // number
	KafkaCorrelationID = "kafka_correlation_id" // number
	KafkaClientID      = "kafka_client_id"      // string
	KafkaTopics        = "kafka_topics"         // list of strings
	KafkaErrorCode     = "kafka_error_code"     // number: 0 when forwarded, the error sent when denied
	KafkaErrorName     = "kafka_error_name"     // e.g. "TOPIC_AUTHORIZATION_FAILED"; absent when forwarded
)

// Verdicts, named as Hubble names flow verdicts.
const (
	VerdictForwarded = "FORWARDED"
	VerdictDropped   = "DROPPED"
	VerdictError     = "ERROR"
)

// Bounds of an entry's strings, which the agent keeps in its flow store
// and repeats in flow logs and Hubble responses. The proxy cuts each
// string and list to the field bounds before it queues an entry; the
// agent enforces all three on what it receives, from any client.
const (
	// MaxFieldBytes bounds one string (path, authority, user agent,
	// policy name, header record, topic, …).
	MaxFieldBytes = 4 << 10
	// MaxListItems bounds a list (header records, Kafka topics), counting
	// the marker item that says more were dropped.
	MaxListItems = 32
	// MaxEntryBytes bounds the strings of one entry together (enforced by
	// the agent).
	MaxEntryBytes = 16 << 10
	// TruncatedMark ends every string that was cut (cut on a rune
	// boundary) and is the last item of every list that was shortened.
	TruncatedMark = "...[truncated]"
)
