// Package accesslog is the agent's Envoy AccessLogService
// (envoy.service.accesslog.v3): proxies stream their HTTP and TCP access
// log entries to it over the xDS socket (the "nodemesh-als" cluster the
// translator emits), and it turns each entry into a flow.Flow for the
// agent's flow store.
//
// # Data in and out
//
// Register the Service on the xDS server's gRPC server; every
// StreamAccessLogs call runs on its own goroutine and hands each
// message's flows to the Sink in one AddAll call, in order (the flow
// store then locks, resolves and wakes its followers once per message,
// not per entry). A stream's first message carries the identifier (node
// and log name); later messages only entries, which inherit it.
//
// # Decoding
//
// Messages are read from their wire bytes (wire.go), not decoded into
// the generated types: a trace of the policy hop (conformance/e2e) showed
// the agent decoding each 16 KiB batch of about 64 entries in one run of
// 0.6-1 ms (about 10 µs of CPU an entry, a third of it the metadata
// Struct), runs that delayed the proxy's and the backend's wake-ups on
// the same CPU. A protowire reader takes only the fields a flow uses and
// reads the l7 metadata keys straight from the Struct's bytes; it skips
// everything else (checking the framing of what it skips at the level it
// meets it, not inside). Each entry's strings are copied, so a flow keeps
// nothing of the message; fields with a one-byte tag and a one-byte
// length or value (most of an entry's) are read without protowire.
// BenchmarkDecode (64 hop entries of 376 bytes), five rounds alternated
// on a 2-vCPU machine other builds kept at load 10-11: 12.2-19.1 µs, 68
// allocations and 3.3 KB an entry before, 2.4-5.0 µs, 2 allocations and
// 208 B after (3.8-6.5 times less time in each round; the allocations do
// not depend on the load).
//
// Memory of the flows: an entry's strings are taken from 4 KiB blocks a
// stream shares between consecutive entries (arena.go), so a message of
// 64 hop entries costs one allocation for its strings where it cost 64;
// its HTTP parts are its own (one allocation each). A block holds no
// pointers, so a stored flow keeps at most one block beyond its own
// memory alive. Blocks of HTTP parts were tried and dropped: a part points
// at its flow's strings and header lists, so one stored flow kept the
// strings of the 31 others of its block alive (about 250 KB a stored flow
// with 8 KB entries, TestStoredFlowKeepsOnlyItsOwn). gRPC and Kafka parts
// and lists are allocated per entry too. A message's flows go to the store
// in calls of at most 256 (keptEntries): the store holds its lock for a
// call, and a 4 MiB message of minimal entries (some 100 000 flows) held
// it for tens of milliseconds in one call.
//
// What the agent spends per entry, from the proxy's bytes on the socket
// to the flow store with the agent's resolver (internal/agent
// BenchmarkAccessLogPath: a gRPC stream on the xDS socket, messages of 64
// hop entries, a follower waiting, client included), five rounds
// alternated on a 2-vCPU machine other builds kept at load 2-9: before
// (one Store.Add per entry, two allocations per entry in the decoder)
// 3.2-6.0 µs of CPU and 3.2 allocations an entry with the hop's two Pods,
// 3.7-4.8 µs with 1000 Pods; after 2.8-3.9 µs and 0.3 allocations (gRPC's
// and the client's, about 19 a message), 2.8-3.7 µs with 1000 Pods; with
// the HTTP parts per entry again (see above) 1.3 allocations an entry and
// 3.4-3.7 µs of CPU in one loaded run. The
// rest is the decoder (BenchmarkDecode: 1.9-2.8 µs an entry on that load,
// 10-20 % less than before the one-byte fast path in four rounds of
// five) and gRPC's transport.
//
// How the bytes get here: the handler is the generated service's
// description with a handler of its own, which receives each message
// into wireMessage. That type has Reset, String, ProtoMessage and
// Unmarshal and no generated reflection; gRPC's protobuf codec accepts it
// as a (legacy) message and protobuf's runtime hands Unmarshal the bytes,
// which are the codec's pooled buffer, valid only during the call: so
// Unmarshal converts right away. Only this service is affected. Not
// chosen: a server codec (grpc.ForceServerCodecV2) passing one message
// type through would sit under every service of the xDS server, ADS
// included; a codec for a content subtype of its own would need the
// proxies to ask for it, and Envoy does not; decoding into a message
// without fields (every field unknown, kept as bytes) costs a copy of
// the message and still a protobuf pass.
//
// The reader reads what proto.Unmarshal would: repeated fields merge as
// protobuf merges them (the last scalar wins, messages merge, the other
// member of a oneof starts afresh, a map entry replaces the one of its
// key, whose key may come after its value), and a known field number
// with another wire type is an unknown field. FuzzEntries checks, on
// every input protobuf accepts, that the flows are those of the
// conversion from the generated types (reference_test.go, the code this
// replaced); on other inputs only that nothing breaks a bound. Where
// protobuf failed the whole message, the decoder fails closed per entry:
// an entry whose bytes are malformed, or whose used strings are not
// UTF-8 (protobuf's rule for these fields, and Hubble's), is dropped and
// counted as skipped; the message's other entries and the stream go on.
// Broken framing of the message itself, its identifier or its entry list
// still fails the message and the stream, as before. A message is
// converted in one go: at a few µs an entry a 16 KiB batch is a fraction
// of a millisecond, so it is not cut into chunks.
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
//     kinds, malformed bytes, used strings that are not UTF-8) are
//     skipped, never a stream error: access logs must not break the
//     proxy's stream. FuzzEntries checks the conversion on arbitrary
//     messages.
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
// nodemesh_accesslog_*_total metrics). Between messages a stream keeps
// room for at most 256 entries (decoded entries, the sink's batch): a
// rare large message does not stay with its stream.
package accesslog
