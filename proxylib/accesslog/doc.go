// Package accesslog is the proxy's client of Envoy's AccessLogService
// (envoy.service.accesslog.v3): the envoy.access_loggers.http_grpc and
// tcp_grpc loggers of connection managers, tcp_proxy filters and the Kafka
// policy filter hand it one entry per request, and it streams them to the
// cluster the logger names (the agent's Unix socket in a STATIC cluster).
//
// Invariants and decisions:
//   - Logging never blocks or slows the data path: Log enqueues into a
//     bounded queue (4096 entries per logger) and drops, counting the drop,
//     when the queue is full or the service is unreachable for long.
//   - Entries are batched as Envoy does: a message is sent when the batch
//     reaches buffer_size_bytes (default 16 KiB) or buffer_flush_interval
//     (default 1 s) passed since the first entry of the batch.
//   - One stream per (cluster, log_name, kind); its first message carries
//     the identifier (node and log_name), later ones only entries. When the
//     stream breaks the sender reconnects with backoff and re-sends the
//     identifier; the cluster's address is resolved again on every
//     connection, so a moved agent socket is followed.
//   - L7 fields travel in common_properties.metadata under the namespace
//     and keys of package proxylib/api/l7meta.
//
// Data enters through Sender.Log from any goroutine and leaves on the
// sender's goroutine; Manager.Close stops every sender after a last flush.
package accesslog
