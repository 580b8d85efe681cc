// Package accesslog is the proxy's client of Envoy's AccessLogService
// (envoy.service.accesslog.v3): the envoy.access_loggers.http_grpc and
// tcp_grpc loggers of connection managers, tcp_proxy filters and the Kafka
// policy filter hand it one entry per request, and it streams them to the
// cluster the logger names (the agent's Unix socket in a STATIC cluster).
//
// Invariants and decisions:
//   - Logging never blocks or slows the data path: Log appends to a
//     mutex-guarded buffer bounded at 4096 entries per logger and drops,
//     counting the drop, when it is full (the service is slow, gone or
//     unknown). The sender goroutine is woken only when a batch starts and
//     every 16 entries after that (a one-slot, non-blocking signal), not
//     once per request: on the policy hop the wake-up, not the append, was
//     the per-request cost.
//   - Entries are batched as Envoy does: a message is sent when the batch
//     reaches buffer_size_bytes (default 16 KiB) or buffer_flush_interval
//     (default 1 s) passed since the first entry of the batch. The sender
//     encodes the entries when woken, so a batch may overshoot
//     buffer_size_bytes by up to 15 entries.
//   - The sender encodes each wake-up's entries (at most 16) as they come,
//     framed as the log_entry fields of the batch's message, and a flush
//     only prefixes the message's own fields, in a scratch buffer the
//     stream reuses, and hands the bytes to gRPC through a codec (a
//     CodecV2 named as the default codec: the service sees an ordinary
//     protobuf stream) that copies them into a buffer of gRPC's pool,
//     which the transport returns once written; a fresh 16 KiB slice per
//     message was about 400 B of garbage per policy-hop request. Marshalling
//     a whole 16 KiB batch at the flush (about 64 policy-hop entries,
//     reflection-based protobuf) held a GOMAXPROCS=1 proxy's only P for
//     0.4-1.3 ms every 64 ms at 1k req/s on the test bed (scheduler
//     trace), and requests that became ready meanwhile waited for it: a
//     good part of the policy hop's p99 (conformance/e2e). An entry
//     protobuf cannot encode (a string that is not UTF-8) is dropped and
//     counted alone; before, it failed its whole batch and the stream. A
//     backlog (entries queued while no stream was up) is sent as soon as a stream is up, split into
//     messages of about buffer_size_bytes; a once-a-second check starts a
//     flush for any entry whose wake-up was missed, so none waits forever.
//   - HTTP entries arrive encoded (decision, measured on the policy hop's
//     listener: keep-alive HTTP/1.1 with an RBAC filter and the gRPC
//     access log, proxylib's TestHTTP1PolicyRequestWithAccessLogAllocations).
//     The connection manager fills a plain HTTPEntry it keeps per
//     connection, HTTPEntry.AppendProto writes the exact bytes of the
//     HTTPAccessLogEntry fields the proxy sets (protowire, no message),
//     and Sender.LogEncoded copies them, framed as a log_entry field,
//     into the sender's reused buffer under its lock. Building the entry
//     as messages (about 1.5 KB: sub-messages, structpb values, two
//     maps, copied strings) and marshalling it by reflection on the
//     sender's goroutine cost 15.6 allocations and 3.0 KB per request
//     for the whole process there; encoded (and messages in pooled
//     buffers), about 0.55 and 50-130 B, all of it gRPC's work per
//     message of about 30 entries, none per request. The garbage was what
//     the proxy's collector spent the hop's tail on. A differential test and
//     a fuzz target hold the bytes to the message-by-message entry
//     (proto.Equal after proto.Unmarshal), including the caps and the
//     refusal of strings that are not UTF-8 (ErrNotUTF8: the entry is
//     dropped and counted, as a message protobuf refused to marshal was).
//   - The TCP proxy's entries (connections, Kafka requests) come the same
//     way (TCPEntry, sharing the common properties' encoder). Log still
//     takes messages, marshalled on the sender's goroutine; both kinds
//     share the queue and keep their order. A message must not change
//     after Log: the sender marshals it later, and entries may share
//     sub-messages.
//   - One stream per (cluster, log_name, kind); its first message carries
//     the identifier (node and log_name), later ones only entries. When the
//     stream breaks the sender reconnects with backoff and re-sends the
//     identifier; the cluster's address is resolved again on every
//     connection, so a moved agent socket is followed.
//   - L7 fields travel in common_properties.metadata under the namespace
//     and keys of package proxylib/api/l7meta.
//   - An entry's strings and lists are cut to l7meta's field bounds (4 KiB
//     a string, 32 items a list, marked with l7meta.TruncatedMark) before
//     it is queued: for an encoded entry by AppendProto itself, on the
//     request's fields and every L7 field, so a caller cannot forget them;
//     for a message by Bound and BoundList (Common applies them to the L7
//     fields). The queue holds at most 4096 entries of bounded size
//     whatever the requests carried, and at most 16 MiB of encoded
//     entries (maxPendingBytes; beyond, they are dropped and counted);
//     the agent enforces the same bounds, and the per-entry total, on
//     what it receives.
//
// Data enters through Sender.Log from any goroutine and leaves on the
// sender's goroutine; Manager.Close stops every sender after a last flush.
package accesslog
