// Package kafka is the Kafka policy parser of the node proxy: it runs on the
// parser framework (package parser) between a client and a broker, frames
// every request and response, judges requests against the Kafka policy
// filter's configuration and answers denied ones itself, in Kafka's own
// terms.
//
// Requests: the 4-byte length is checked against max_request_bytes (default
// 16 MiB) before anything is buffered — a larger or negative length closes
// the connection — and bytes are only buffered as they arrive, never
// allocated from the announced length. The header (api_key, api_version,
// correlation_id, client_id, tagged fields of flexible versions) and the
// body are decoded with franz-go's kmsg for every API key and version kmsg
// knows; anything else closes the connection. Topics are collected from the
// decoded request: topic name fields at any depth, topic-name lists, topic
// resources of config and ACL requests; a topic named only by ID or a topic
// regex counts as unknown.
//
// Decisions (Decide; see kafka.proto): the connection's original
// destination selects the destination entry; no entry denies everything
// ("unknown_destination"), an entry without rules allows everything. A rule
// matches a request by source prefix, API key (role expanded, see
// kafkav1.RoleAPIKeys), exact version and client id; a request needs a
// matching rule, and every topic it names must be allowed by one of the
// matching rules (Cilium: "all topics must be allowed"); topic-less
// requests such as Metadata for all topics need only a matching rule, as
// Cilium documents; unknown topics need a matching rule without a topic.
//
// Denied requests are dropped and answered with a response built from the
// request with kmsg — topics, partitions, groups and coordinator keys
// mirrored, the error at the deepest level that has one — at the request's
// correlation id: TOPIC_AUTHORIZATION_FAILED when a topic is not allowed or
// for topic APIs, GROUP_AUTHORIZATION_FAILED for group APIs,
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED for transactional ones,
// CLUSTER_AUTHORIZATION_FAILED otherwise (as a broker's ACLs answer). A
// denied Produce with acks=0 expects no answer; the connection is closed,
// as a broker does on such an error.
//
// Ordering: clients pipeline, and responses must come back in request
// order. The parser keeps the requests still owed an answer in order; a
// denial is injected right away only when nothing forwarded is pending,
// otherwise it is released right after the broker's response to the
// request before it (the framework writes injections at response
// boundaries). A response whose correlation id is not the oldest pending
// request's closes the connection; at most 4096 requests may be pending.
//
// Versions: ApiVersions responses are rewritten to advertise only versions
// the proxy can decode and that still name topics (Fetch and Produce up to
// 12, OffsetCommit and OffsetFetch up to 9, DeleteTopics and
// TxnOffsetCommit up to 5), and to drop unknown API keys, so clients never
// send a request the proxy cannot judge by topic name.
//
// Not supported: TLS (encrypted bytes cannot be judged) and SASL handshake
// v0 raw tokens (the connection closes).
package kafka
