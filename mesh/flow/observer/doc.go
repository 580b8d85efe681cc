// Package observer serves Hubble's Observer gRPC API (observer.Observer,
// generated into api/v1 from the pinned Cilium release's .proto files)
// from the node's flow store, so the real hubble CLI, Hubble UI and
// tools built on the API read nodemesh's flows unchanged.
//
// # Data in and out
//
// The flow store (mesh/flow) is the one source: the proxy's L7 flows
// (HTTP, gRPC, Kafka, relayed TCP) arrive through the access-log service,
// the datapath's L3/L4 events (drops with their reason, redirects to the
// proxy, auth-required drops) through the agent's event reader. Proto
// converts a stored flow into Hubble's flow.Flow when a client reads it;
// GetFlows filters on that converted form, so a filter means what it
// means in Hubble. ServerStatus reports the store's fill, GetNodes the one
// node, and the gRPC health service answers `hubble status`.
//
// # Decisions
//
//   - The API is generated from Cilium's .proto files rather than
//     imported from github.com/cilium/cilium: that module requires
//     hundreds of packages (and replace directives) the agent must not
//     link; the generated code has the same proto names, so the wire
//     format is Hubble's.
//   - Where the agent serves it: a Unix socket, by default hubble.sock
//     in the agent's state directory (Cilium's is
//     /var/run/cilium/hubble.sock; nodemesh keeps its own directory so
//     both can run on one node), mode 0660; and, only when asked
//     (--hubble-listen-address, e.g. 127.0.0.1:4244, Cilium's port),
//     plaintext TCP. TCP is off by default because flows name workloads
//     and paths and the listener has no TLS.
//   - Followers read the store's ring at their own pace and never hold up
//     the proxy: a follower that falls more than the ring's capacity
//     behind gets a LostEvent (source HUBBLE_RING_BUFFER) with the number
//     of flows it missed, then continues with the oldest flow still held.
//   - Streams are bounded three ways, so clients cannot take the agent's
//     memory or goroutines: at most DefaultMaxStreams (64) GetFlows
//     streams over every connection and listener (WithMaxStreams; gRPC's
//     own limit, 16, is per connection), the next one refused with
//     ResourceExhausted; a message the client does not take within
//     DefaultSendTimeout (15 s, WithSendTimeout) ends its stream with
//     DeadlineExceeded, since a blocked Send would otherwise hold the
//     stream for ever (the send runs on a goroutine of the stream, so the
//     handler can give up and its return unblocks the Send); and history
//     is sent while it is read, never held: for the last Number flows a
//     first pass only counts the matches, a second sends the last Number
//     (a flow the ring overwrites between the passes is reported as
//     lost). 15 s is long next to any reader that is alive (the flow
//     control window holds about 64 KiB of flows) and short next to how
//     long a stuck one would be kept. Stats counts admitted, refused and
//     cut-off streams and flows sent, for metrics.
//   - GetFlows semantics follow Hubble: Number is the last N matching
//     flows (the first N with first=true); Number 0 means every held
//     flow, except with follow and no since, which starts at the newest;
//     since without until (and without follow) ends at the request time.
//   - Filters supported: source/destination IP (address or prefix), pod
//     ("namespace/prefix"), identity, port; verdict, drop reason, traffic
//     direction, IP version, event type, protocol (tcp, udp, sctp, icmp*,
//     http, and kafka as an extension), HTTP status (code or prefix "4+"),
//     method and path (regular expression), node name, reply, and
//     source/destination labels (labels.go: Kubernetes' selector syntax
//     with Cilium's source prefixes, "k8s:app=x", "org notin (empire)",
//     "!class"; a key without a source matches any source; gt/lt are
//     refused). So `hubble observe --label/--from-label/--to-label`,
//     `--namespace` and `--pod` work. A filter naming anything else
//     (FQDNs, services, workloads, DNS, headers, TCP flags, CEL, …) is
//     refused with InvalidArgument, never silently ignored. Requests are bounded (filters, values, pattern
//     size, field-mask paths, message size). FuzzGetFlowsRequest feeds
//     request bytes to the parser (a list matches when one of its
//     filters does; masks are idempotent); FuzzParseSelector checks that
//     a parsed selector, written back, parses to the same requirements.
//   - Conversion: the datapath's reasons map to Cilium's drop-reason
//     codes of the same meaning (dropReasons); a drop is monitor event
//     type 1 with the code as sub-type, a redirect a trace (type 4) to
//     the proxy, a proxy flow an access-log event (type 129). gRPC is an
//     HTTP/2 request with a grpc-status header, as Cilium shows it; a
//     denied HTTP request is a REQUEST record with verdict DROPPED that
//     keeps the status the proxy answered with; Kafka records carry the
//     first topic (Summary lists all). The policy that decided becomes
//     {Ingress,Egress}{Allowed,Denied}By. An endpoint's labels are its
//     identity's ("source:key=value", sorted), recorded in the store when
//     the flow is added (flow.LabelResolver, as Cilium shows the labels
//     of the moment); without them a reserved identity carries its
//     reserved:<name> label.
//   - The field mask the hubble CLI sends for its compact output is
//     honoured (fields outside it are left out).
package observer
