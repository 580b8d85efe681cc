// Package tcpproxy serves filter chains whose terminal network filter is
// Envoy's tcp_proxy: each downstream connection gets one upstream
// connection to a host of the configured cluster — for an ORIGINAL_DST
// cluster the connection's original destination — opened with the
// cluster's socket options (SO_MARK from upstream_bind_config, and the
// client's address with the listener's original_src), and bytes are copied
// both ways with half-closes propagated.
//
// With the Kafka policy filter configured before tcp_proxy, the bytes run
// through the parser framework (package parser) with a Kafka parser
// (package kafka) instead: every request is judged against the policy the
// filter's ECDS configuration currently holds — a policy update applies to
// the next request of existing connections too, as Cilium re-evaluates
// policy per request — and denied requests are answered with Kafka errors.
//
// Network RBAC filters configured before tcp_proxy judge each connection
// once, in order, as soon as it is handed over (package rbac, with the
// client's address, the (original) destination, the SNI and a terminated
// chain's client certificate): a denied connection is closed before a
// cluster is picked, so it costs no upstream connection and the backend
// never sees it; its access-log entry carries Envoy's
// rbac_access_denied_matched_policy[<policy>|none] termination details.
// Envoy decides at the first client byte; everything the rules can read
// is known at accept, so deciding there gives the same verdicts without
// waiting for a client that may never speak.
//
// Decisions: the cluster is the configured one or, with
// weighted_clusters, one picked per connection in proportion to its
// weight; a failed connect is retried on a host picked anew up to
// max_connect_attempts (default 1), an overflow of max_connections is
// not; no cluster, no host or the last failed connect closes the
// downstream connection (Envoy's behaviour); idle_timeout (default 1 h)
// closes a connection without traffic in either direction; a missing Kafka filter
// configuration closes the connection at its first request (fail closed).
// Access logs: one TCP entry per connection at close (l7meta protocol
// "tcp"), and with the Kafka filter one entry per Kafka request. Entries
// are filled into a pooled accesslog.TCPEntry and encoded by hand, so a
// Kafka request's entry allocates nothing once the pool is warm (it took
// 70 allocations as a map of values turned into messages; TestLogKafkaAllocs).
//
// Draining: Shutdown stops new connections at once and waits for the open
// ones up to its context, then closes them.
package tcpproxy
