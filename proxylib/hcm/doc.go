// Package hcm is the proxy's HTTP connection manager and router: it serves
// the connections of one filter chain over HTTP/1.1 (its own zero-allocation
// codec, package http1) and HTTP/2 (golang.org/x/net/http2), applies Envoy's
// request sanitising, matches routes, answers redirects, direct responses
// and errors locally, and forwards everything else to a cluster endpoint
// over pooled HTTP/1.1 or h2c connections, streaming bodies both ways.
//
// How data enters and leaves: the listener hands an accepted (and, for TLS,
// handshaken) connection to Handler.ServeConn. Each request loads the current
// Routing snapshot once (an atomic pointer swapped by the configuration
// layer), so an update never changes a request in flight and never drops a
// connection. Handler.Shutdown drains: idle HTTP/1.1 connections close at
// once, busy ones answer their current request with "connection: close",
// HTTP/2 connections receive GOAWAY.
//
// Decision: when Shutdown's context ends, the forced close interrupts and
// never waits. A keep-alive request is served inside its connection's
// read session, whose callback holds the socket: Close would wait for
// that callback, i.e. for the request, which may wait on a silent upstream
// or a stalled response for as long as its route allows (an earlier
// version closed under the handler's mutex and stayed blocked there,
// seconds past a 100 ms context, before it reached the HTTP/2
// connections). So the forced close shuts sockets down (shutdown(2)
// through RawConn.Control, which takes no lock a session holds; package
// sockio): the client's, and the upstream connection the request uses,
// which each HTTP/1.1 connection publishes in an atomic pointer while it
// uses it and clears before it pools or discards it (three atomic
// operations for a request served on its first upstream connection; a
// replay or a retry adds three per further connection and one for each
// one discarded; no system call); it cancels
// the connection's context of dials, HTTP/2 upstream exchanges and retry
// back-offs (made on first use, so the keep-alive path allocates nothing
// for it), and an aborted connection takes no further upstream
// connection, so a retry policy does not start over. Each serving
// goroutine then fails its reads and writes at once and closes its own
// connection; Shutdown closes nothing under its mutex. HTTP/2 connections
// served through http2.Server.ServeConn are unknown to http.Server.Close,
// so the handler tracks them with their running streams and aborts them
// the same way (h2abort.go). Draining idle HTTP/1.1 connections shuts
// their sockets down too. A connection whose protocol is told by its first
// bytes is tracked from the start, idle until its first byte arrives: a
// drain closes it while it has sent nothing, and a forced close reaches it
// at any point. One that has sent part of the HTTP/2 preface counts as
// busy, so a drain leaves it; if it turns out HTTP/2 after the HTTP/2
// server's GOAWAY went out, it is served until the forced close. It
// leaves the HTTP/1.1 set for the HTTP/2 one under the handler's mutex
// both ways, so no forced close misses it.
//
// Envoy behaviours reproduced (defaults of the connection manager and
// router, as users observe them):
//   - "server: <server_name>" (default "envoy") on every response, replacing
//     the upstream's value (server_header_transformation OVERWRITE).
//   - use_remote_address: the peer address is appended to x-forwarded-for
//     (for a loopback peer the proxy's own address, as Envoy does) unless
//     skip_xff_append; x-forwarded-proto is set from the connection unless
//     trusted hops are configured and the header is present. Without
//     use_remote_address, x-forwarded-proto is only added when missing.
//   - No address is internal (Envoy's default since 1.36), so with
//     use_remote_address every request is an edge request: it gets
//     x-envoy-external-address, and its x-request-id is replaced unless
//     preserve_external_request_id. Otherwise x-request-id (a random UUID)
//     is only generated when missing. generate_request_id=false disables it.
//   - x-envoy-internal and Envoy's retry/timeout control headers sent by
//     clients are removed; hop-by-hop headers (connection, keep-alive,
//     proxy-connection, transfer-encoding, upgrade, te other than
//     "trailers") are not forwarded.
//   - The router adds x-envoy-expected-rq-timeout-ms when a route or
//     per-try timeout is set (the per-try one if both),
//     x-envoy-original-path when it rewrites the path, and
//     x-envoy-upstream-service-time to responses.
//   - Header edits: removes then adds per level, weighted-cluster level
//     first, then route level (so route-level overwrites win), for requests
//     and responses; route-level response edits also apply to redirects and
//     direct responses.
//   - Local replies carry date, server, content-length and, with a body,
//     content-type text/plain. For gRPC requests (content-type
//     application/grpc*) they are trailers-only gRPC responses with the
//     status mapped from HTTP as Envoy maps it (404 → 12, 503/504 → 14 ...).
//   - Errors: no route → 404; unknown cluster → cluster_not_found_response_code
//     (503); no host → 503 "no healthy upstream"; connect failure or reset
//     before headers → 503; route timeout, or per-try timeout before the
//     response started → 504 "upstream request timeout" (also when the
//     request waited that long for a connection at the cluster's
//     max_connections, or for a connect that had not completed). As
//     Envoy's, the route timer runs from the request's end and covers
//     everything after it, retries included: from the request's start
//     when it has no body or (HTTP/1.1 client) its whole body came with
//     its head, so the wait for a connection and the dial count, which
//     connect_timeout alone would bound later; for a body still arriving,
//     from when its end was read. That read happens once a connection
//     exists (bodies are not read ahead), so until then the wait for the
//     connection is bounded by the route timeout on its own, and the timer
//     starts again at the body's end. HTTP/2 client bodies count as still
//     arriving (the server library does not tell when END_STREAM came).
//     An attempt's per-try timeout starts when it has its connection and
//     the request is complete, and stops when the response head arrives.
//     An HTTP/1.1 connection obtained once the route timer expired is not
//     used: the request is answered 504 and none of it is sent (an HTTP/2
//     attempt is cancelled through its context). HTTP/1.1 and HTTP/2
//     clients and upstreams agree (timeout.go). A circuit breaker overflow
//     (max_pending_requests, max_requests) → 503 "upstream connect error or disconnect/reset
//     before headers. reset reason: overflow" with x-envoy-overloaded: true
//     and response flag UO.
//   - Requests the HTTP/1.1 codec refuses get 400, 431 (head limits) or
//     501 (transfer codings) with the status text as body, and a close;
//     requests whose client stalls get 408 ("request header timeout",
//     "request timeout", "stream timeout") and a close; a silent upstream
//     504 "stream timeout" (h1_limits.go; the proxylib package comment
//     lists every limit and timeout). HTTP/2 streams get the same answers
//     per stream, or RST_STREAM once their response started (h2timer.go);
//     a stalled header block, or a client that reads nothing, ends its
//     connection (h2deadline.go). An upgraded connection closes when no
//     byte moved either way for the stream idle timeout (tunnel.go).
//   - HTTP/1.0 requests get 426 (accept_http_10 is false by default);
//     "Expect: 100-continue" is answered by the proxy and not forwarded
//     (proxy_100_continue false). HTTP/1.1 trailers are not forwarded
//     (enable_trailers false); HTTP/2 trailers are.
//   - Retries and mirrors (retry.go, mirror.go, forward_tries.go): a route
//     with a retry policy or sampled mirrors takes its own request path,
//     where each attempt reads the request body through a bounded copy
//     (replay.go) and Envoy's router decides after each attempt, before
//     relaying anything, whether to try again; routes without them keep
//     the allocation-free HTTP/1.1 path. Mirrors are fire-and-forget
//     copies on their own goroutines.
//   - x-forwarded-client-cert follows forward_client_cert_details (SANITIZE
//     by default: removed) and RBAC authenticated principals read the
//     client certificate (xfcc.go).
//   - An upstream TLS handshake that failed is answered with the transport
//     failure reason in the body and the response code details.
//   - Upgrade requests (WebSocket) are forwarded only when the connection
//     manager lists the upgrade type in upgrade_configs; otherwise 403.
//     HTTP/2 CONNECT (tunnels, and extended CONNECT) is refused likewise.
//   - Path normalisation (normalize_path, merge_slashes,
//     path_with_escaped_slashes_action; path.go has the exact rules and
//     where they are stricter than Envoy) runs first, in one function for
//     HTTP/1.1 and HTTP/2 (stream.process), so the RBAC filters, the route
//     match, the access log and the upstream request all carry the same
//     normalised path. A rejected path is a 400 local reply, an unescaped
//     slash under UNESCAPE_AND_REDIRECT a 307 whose Location is the
//     normalised path; both with details path_normalization_failed.
//
// HTTP/2 (h2guard.go, h2check.go): golang.org/x/net/http2 serves the
// protocol, but every client byte passes a guard first. The guard decodes
// each header block with an HPACK decoder kept in step with the server's
// and checks it as HTTP/1.1 would check the same request (h2Check, with the
// validators of package http1), so a request that could not have arrived
// over HTTP/1.1 cannot leave over it either. A malformed request is reset
// (RST_STREAM PROTOCOL_ERROR) or, by default as in Envoy, its connection
// closed (GOAWAY PROTOCOL_ERROR); it never reaches a handler. Trailers are
// left to the server, which knows the stream states; they are forwarded to
// HTTP/2 upstreams only, never into an HTTP/1.1 head. The server
// itself enforces content-length against DATA: more DATA than declared
// resets the stream before the excess is forwarded; less ends the body
// with an error, the upstream connection is discarded with the request
// incomplete and the client gets 400. The guard also merges SETTINGS frames
// that repeat a parameter (the server would hang up on them), and it
// bounds the time of every header block and every write to the client,
// which the server does not. Its cost is a second HPACK decode of each
// header block and one copy of each HEADERS, CONTINUATION and SETTINGS
// frame (DATA passes without a copy); decisions
// and the reasons for 16 KiB frames and the windows are in h2guard.go and
// package resource.
//
// HTTP/2 upstreams (h2status.go) are spoken by x/net's transport, which
// holds a response's header list to 60 KiB (package upstream) but takes
// any integer as :status; a code that is not three digits of 100 or more
// is an upstream protocol error (503, UPE), as an HTTP/1.1 status line
// outside that range is, and is never relayed (to an HTTP/1.1 client it
// was "HTTP/1.1 0", to an HTTP/2 client a handler panic in WriteHeader).
// FuzzH2Upstream drives a connection manager, with an HTTP/1.1 or an
// HTTP/2 client, to an upstream answering arbitrary frames after a valid
// handshake: no panic, and the client gets a well-formed response, a
// reset or a closed connection in bounded time, with a bounded head.
//
// L7 policy: RBAC filters before the router are evaluated after the
// request is sanitised and normalised, before route selection, on the
// connection's original destination and direct peer address (package
// rbac); a denial is a 403 local reply "RBAC: access denied" with details
// rbac_access_denied_matched_policy[none], a missing discovered
// configuration a 500 (NFCF). Local reply mappers then rewrite status and
// body. gRPC local replies carry the body as grpc-message, percent-encoded.
// With access loggers every request produces one HTTPAccessLogEntry when it
// ends, carrying the l7meta fields (verdict, matched policy, gRPC service,
// method and status). The entry allocates nothing (decision; see
// accesslog's doc.go): the connection refills one plain
// accesslog.HTTPEntry whose byte fields view the request's buffers (method
// as an enum looked up without a string conversion, path, authority and
// headers in place), encodes it once into the connection's scratch buffer
// (kept while it stays within 8 KiB) and every sender copies the bytes.
// The field bounds are applied by the encoder. On the policy hop's
// listener (RBAC + gRPC access log, keep-alive HTTP/1.1) a request cost
// the whole process 15.6 allocations and 3.0 KB with entries built as
// messages (a struct of messages, a Fields map, a FilterMetadata map,
// the copied strings, the method and path conversions, and the sender's
// reflection marshal); now about 0.55 and 50-130 B, all of it the access
// log's per-message gRPC work (TestHTTP1PolicyRequestWithAccessLogAllocations,
// TestLogHTTPAllocs).
//
// Performance invariants of the HTTP/1.1 path: no per-request allocation on
// the happy path (buffers are lent from package connbuf while a request is
// served and, on plain TCP connections, given back while the connection
// waits for its next request with nothing buffered, so an idle keep-alive
// connection holds none and the buffer a request uses is most often the
// one the previous request released, still in cache; header lists view
// the read buffer, matchers are precompiled, a path that needs no
// normalising is used in place and one that does is built in a scratch
// buffer), one write per direction for
// small messages, deadlines re-armed lazily. Plain TCP connections (both
// sides) read and write with raw non-blocking system calls (package
// sockio), which keeps the runtime's monitor thread asleep and the one P
// with its goroutine. A downstream connection is served inside a poller read
// session (serveSession): between keep-alive requests it waits for the next
// one without the read that would fail with EAGAIN, because the read that
// brought the last request reported (TCP_INQ) that nothing, not even a FIN,
// was left; a request whose body is not yet buffered, or an upgrade, ends
// the session and is served with ordinary reads. In the middle of a head
// the connection always reads until EAGAIN before waiting. A head that
// arrives in pieces is parsed in linear time (the parser resumes where it
// stopped) and waits under the earliest of the stream idle, request
// headers and request deadlines; the happy path, a head in one read, reads
// no clock for them. Writes to the client carry the stream idle timeout as
// a write deadline, re-armed lazily like the reads'. Upstream, the
// request is written and the response awaited in one read session of the
// pooled connection (exchange), again without the failing read. The pool
// probes an idle connection before handing it out (one non-blocking
// peek): anything readable on it, bytes the server sent beyond its last
// response or a FIN, closes it, so stray bytes are never taken for another
// request's response (package upstream). A FIN arriving between that probe
// and the request would be missed until the next read, so the wait is
// bounded by a check deadline of at most 1 s (see h1_exchange.go): with no
// response byte by then the connection is read as before, and a closed one
// is a reset, replayed like any request on a reused connection the server
// closed. A connection whose response did not end exactly where the bytes
// read so far end is not pooled; this holds for HTTP/1.1 and HTTP/2
// clients alike. Upstream responses are read with plain reads: a FIN or
// bytes queued behind a complete response are the probe's to find, as it
// must find whatever arrives while the connection idles, so asking the
// kernel on every response read (TCP_INQ, a recvmsg with a control
// message, dearer than a read: system calls cost 0.5 µs and more on a
// virtual machine) would only keep such a connection out of the pool a
// little earlier (TestUpstreamResponseReadsArePlain). On the client side
// TCP_INQ stays: there it saves a whole read per request, and a FIN that
// came with a request would otherwise go unseen until the idle timeout.
//
// The resulting budget of a warm keep-alive request, counted with strace
// under 16 connections: two reads (the client's a recvmsg with TCP_INQ,
// the upstream's a read), two writes, the reuse probe and about 0.3
// poller waits, on one goroutine per downstream connection with no
// hand-off, and three clock readings (the request's start, the response
// head's arrival, the request's end; each deadline armed on the way
// counts from the latest of them, as nothing waits in between); nginx's
// worker under the same load makes two recvfrom, two writev, one
// getsockopt (its check of the kept-alive upstream) and about 0.25
// epoll_wait. A change that adds a system call, an allocation
// (TestHTTP1KeepAliveRequestAllocatesNothing) or a goroutine hand-off per
// request needs a reason as strong as the probe's.
//
// Where the CPU goes, proxy against nginx (one core each, 16
// connections, counted per process with perf's system call tracepoints
// and sampled with perf record, the two alternated in one session on a
// loaded 2-vCPU virtual machine, so only the counts are exact): both make
// 5.3 system calls per request, 0.33 poller waits (96 % of the proxy's
// return at once, the scheduler looking for work) against nginx's 0.26,
// no futex call and 0.02-0.04 context switches. Kernel time is the same
// within the noise (about 15 µs of the two writes, which deliver the
// segments over loopback, 3 µs of reads, 0.45 µs for the reuse probe
// against 0.40 µs for nginx's getsockopt). The difference is user time,
// 1-2 µs more than nginx's 7-9 µs, spread thin: the runtime's I/O
// machinery (the poller's wrappers of each system call, parking and
// readying a goroutine twice per request, lending four buffers; about
// 3 µs in all, against well under 1 µs of nginx's event loop) and the
// Envoy behaviours this nginx configuration lacks (request ID,
// x-forwarded-for, server overwrite, upstream service time, request
// statistics). No single cost of more than about 0.5 µs stands out.
// Writing straight to the descriptor a read
// session holds (skipping the poller's write bookkeeping, about 1 % of
// the samples) was tried and left out: a Close from another goroutine
// waits for the session, and only the poller's write notices it, so a
// forced close at shutdown could not stop a streaming response.
//
// At one connection, counted the same way: nginx makes 7.0 system calls
// per request, 2.0 of them epoll_wait (it sleeps twice per request, for
// the request and for the response); the proxy 9.0, 4.0 of them
// epoll_pwait. The two extra calls are the Go scheduler's: before a
// thread with nothing to run sleeps in the poller, it polls once without
// waiting (runtime.findRunnable), and that poll finds nothing when the
// process is about to sleep anyway. A goroutine that waits on a socket
// through the runtime's poller cannot skip it. Only an event loop of the
// proxy's own (one locked thread with its own epoll set, each connection
// a state machine it steps) would, and the request path is written as
// sequential code on one goroutine per connection.
//
// At 128 connections the proxy's throughput is on a par with nginx's but
// its p99 has been worse in every full benchmark run since the afternoon
// of 2026-12-06. The runtime's poller hands a batch of ready sockets to
// the run queue in the reverse of epoll's order (epoll reports sockets in
// the order they first became ready since its previous wait; netpoll
// collects their goroutines by pushing each onto the head of a list, and
// the scheduler runs that list from its head), so the socket that became
// ready first in a batch is served last; nginx serves its events in
// epoll's order. A toolchain with that one list reversed (an experiment,
// not shipped) had the lower median p99 in each of three invocations of
// five rounds against the stock build (7.05 / 6.03 / 5.40 ms against
// 9.91 / 6.91 / 8.78 ms, nginx 6.71 / 4.74 / 6.08 ms) at the same
// throughput, closing about 89 %, 40 % and all of the stock build's gap
// to nginx: the order accounts for much of it. A Gosched before reading
// the upstream response (so that step queues in order on the global run
// queue, and usually finds the response already there) was tried too and
// made no difference above the noise. Closing the part the order accounts
// for needs the same event loop, or a runtime that keeps the poller's
// order.
//
// HTTP/2 streams cost more. At 10 streams in flight on one h2c connection
// to an HTTP/1.1 upstream (TestH2RequestCost, BenchmarkH2Proxy) a request
// makes about 38 heap allocations and starts 2.7 goroutines, nearly all of
// them golang.org/x/net/http2's server's: the decoded field strings, the
// request with its URL, header map and contexts, the response header map
// and the copy the server takes of it at WriteHeader (a slice per field);
// a goroutine runs each handler, and another most response HEADERS frames
// and flushes (the server hands a write that may not fit its buffer, and
// every flush, to a goroutine of its own). The stream's own share is three
// allocations and no goroutine: the request head is copied once into the
// pooled stream's buffer (viewH2Request), the response fields reach the
// server's header map in three allocations (setH2Header), which also stops
// the server library from adding a content-type it sniffed or a date of
// its own (an HTTP/2 response carries the fields an HTTP/1.1 one would,
// once each), and an HTTP/1.1 response body is read through a reader kept
// in the stream. The cancellable context of a stream with timeouts is
// derived from the server's only when the stream waits on something that
// needs one (an h2c upstream request, a retry, a dial, a wait at
// max_connections), never for a request served on an idle pooled HTTP/1.1
// connection: deriving it for every stream cost five allocations (the
// context, its cancel function, the parent's child set and done channel).
// What is left would only go with the server library itself, replaced by a
// connection loop of the proxy's own (one goroutine reading frames,
// streams without a goroutine each); that has to serve h2spec and every
// HTTP/2 hardening test here as the library does before it can take over,
// and has not been built. Their I/O follows the
// HTTP/1.1 path's reasoning: h2c sockets (and the socket under every TLS
// connection) use sockio's raw reads and writes; the guard reads an h2c
// connection through a 4 KB buffer; and before each flush the server
// makes, the writer yields once so the frames of other streams' answers
// join the next flush instead of each getting one. The read that ends a
// response body of known length is not flushed by the handler: the server
// sends it with END_STREAM when the handler returns, one DATA frame
// instead of two and one flush (one goroutine of the server's) fewer. Counted with strace at
// 10 concurrent streams on one connection, per request: downstream reads
// from about 2.2 to 0.6 and downstream writes from about 3 to 0.75, plus
// one upstream write and read. What is left is mostly the server's own
// cost: a goroutine per stream and one more per flush.
//
// Timers of HTTP/2 streams and upgraded connections: one runtime timer
// per stream, armed when its handler starts and re-armed only when it
// fires, since activity is an atomic store of a clock reading; the guard
// arms its read deadline only to move it earlier (a deadline that fires
// early is re-armed or cleared, and the read resumes) and its write
// deadline lazily, so back-to-back requests touch no runtime timer beyond
// their stream's. Upgraded connections are copied through the buffers
// their connections already hold, not spliced: the idle timeout needs to
// see each byte move (a kernel splice reports nothing until it ends).
//
// Runtime.Requests counts every HTTP request of every handler (for the
// proxy's metrics) by protocol (http or grpc), response code class and
// policy verdict, with a latency histogram per protocol: fixed arrays of
// atomics, so counting costs a few atomic adds and the label set is
// bounded whatever clients send. Every request is timed for it, not only
// those an access log records.
//
// Event loops (Runtime.Loops, set by proxylib.WithEventLoops; what
// nodemesh-proxy runs by default; h1_loop.go, h1_loop_up.go): a plain-TCP
// HTTP/1.1 connection, once sniffed, leaves the runtime's poller (its
// descriptor is duplicated and the net.Conn closed) and is served by one of
// N loops (package evloop) as a state machine: read the head (one read at a
// time, parsed after each), prepare (the same routing and filters as on a
// goroutine), take a detached idle upstream connection of the loop's own
// (package upstream, Detach; checked before reuse, see below) or have a
// goroutine get one through the pool (dial, breaker queue, route deadline)
// and post it back, write the request, read the response head, and relay a
// response whose Content-Length body (at most 8 KiB) came with its head.
// Timeouts are loop timers with the goroutine path's deadlines (idle, head,
// response head under the per-try, route or stream idle timeout, a client
// that stops reading). Anything else goes to the goroutine code
// mid-connection, the sockets back in the runtime's poller: an upgrade or a
// body not buffered (before routing); retries, mirrors, HTTP/2 or TLS
// upstreams, a logged request with a body (at forward); a response whose
// body did not come with its head, is chunked or is over 8 KiB (after the
// head, relayResponse: its body under the route and stream idle timeouts).
// Sockets are edge-triggered: a FIN seen in an event (EPOLLRDHUP) is
// remembered (the client's closes the connection once its buffered requests
// are answered; the server's makes the loop read past short reads until the
// head is parsed or the stream ends, and the connection is not reused), and
// a connection that served 16 reads or local answers in a row yields to the
// others (its continuation is posted behind them). A loop keeps its idle
// upstream connections without buffers, expires them on the pool's idle
// timeout, closes those of pools that left the configuration (a minute's
// sweep) and gives them back to the pool whenever a request queues for one
// (upstream.Pool.OnQueue). An idle connection stays in its loop's epoll set,
// edge-triggered, and its handler closes it on a FIN, an error or stray
// bytes. It is parked drained: its last read was short, or, when that read
// filled the buffer (bytes may be left whose edge is spent), it is probed
// once as it is parked and closed if anything is there. So the pool's reuse
// probe (a one-byte non-blocking peek per request) is needed only when no
// wait since the connection was parked has covered it: when the round's wait
// came after the parking, collected every ready descriptor (it did not fill
// its array, no signal cut it short, and it was not an idle loop's wait that
// gave its P away) and reported nothing for it (evloop.Loop.Quiet), that
// wait told what the probe would have. What either misses is what arrives
// between the check and the request's write: for the probe about a
// microsecond, for Quiet the rest of the round (up to milliseconds when
// hundreds of connections are ready at once). nginx's keepalive pool has the
// same window: it peeks when it caches a connection whose socket may hold
// more, then relies on the connection's read event and checks nothing when
// handing it out. A reused connection that closes before answering gets its
// request replayed once on another; the replay's connection is always probed
// (a server that closed one connection may be closing its others). Drain and
// forced close reach a loop-served connection through a posted function that
// checks the connection is still the same (h1conn.gen, bumped when the loop
// gives it up). Why a loop at all: evloop's package comment.
package hcm
