// Package accesslog is the agent's Envoy AccessLogService
// (envoy.service.accesslog.v3): proxies stream their HTTP and TCP access
// log entries to it over the xDS socket (the "nodemesh-als" cluster the
// translator emits), and it turns each entry into a flow.Flow for the
// agent's flow store.
//
// # Data in and out
//
// Register the Service on the xDS server's gRPC server; every
// StreamAccessLogs call runs on its own goroutine and hands flows to the
// Sink as they arrive. A stream's first message carries the identifier
// (node and log name); later messages only entries, which inherit it.
//
// # Mapping
//
//   - Source is the downstream remote address, destination the
//     downstream local address (the original destination of a transparent
//     listener); time is the entry's start time; latency is the time to
//     the last byte sent downstream (else the duration).
//   - The log name is the listener ("policy/<direction>/<protocol>"); the
//     direction is taken from it.
//   - L7 fields come from common_properties.metadata under "nodemesh.l7"
//     (keys of proxylib/api/l7meta): protocol, verdict, policy, reason,
//     gRPC service/method/status, Kafka API key, version, correlation id,
//     client id, topics and error. HTTP method, authority, path and status
//     come from the entry's request and response.
//   - Entries without that metadata (stock Envoy) are judged from the
//     standard fields: an HTTP 403 that never reached an upstream is
//     DROPPED, another local reply of 500 or more an ERROR, the rest
//     FORWARDED; a TCP entry is a relayed connection (protocol "tcp").
//   - Bad entries (no addresses, a port beyond 16 bits, unknown log
//     kinds) are skipped, never a stream error: access logs must not
//     break the proxy's stream. FuzzEntries checks the conversion on
//     arbitrary messages.
//
// # Bounds
//
// The bounds are the schema's (proxylib/api/l7meta), which the builtin
// proxy already applies per field; the agent does not rely on that.
// Every string of an entry is stored in the flow ring and repeated in
// flow logs and Hubble responses, and the xDS socket's only limit is
// gRPC's 4 MiB per message, so each flow is bounded on intake
// (bounds.go): a string at most MaxFieldBytes (4 KiB), a list (header
// records, Kafka topics) at most MaxListItems (32) items, and the
// strings of one entry together at most MaxEntryBytes (16 KiB), taken in
// a fixed order (L7 metadata, authority, path, lists, gRPC and Kafka
// names). The stream's node ID and log name, shared by its flows, are
// capped at MaxFieldBytes each. A cut string ends with TruncatedMark
// ("...[truncated]", cut on a rune boundary so it stays valid UTF-8,
// which Hubble's encoding requires) and is copied, so the decoded
// message is not kept alive by a prefix; a shortened list ends with the
// mark as its last item. Envoy truncates nothing here and Hubble's L7
// fields are bounded only by the proxy's header limits (60 KiB of head);
// a flow is an observation, so a readable prefix is what it keeps. Stats
// counts recorded, cut and skipped entries (the agent's
// nodemesh_accesslog_*_total metrics).
package accesslog
