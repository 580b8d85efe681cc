// Package upstream owns clusters, their endpoints and load balancers, and the
// connections to endpoints: pooled HTTP/1.1 keep-alive connections with
// their own buffers, and one h2c transport per endpoint for HTTP/2 clusters.
//
// Pools are keyed by cluster name, endpoint address and protocol and
// outlive cluster versions: an xDS update that re-creates a Cluster hands
// it the same pools, so keep-alive connections survive configuration
// changes. Pools no longer referenced by any cluster are closed by
// Manager.Retain. A pooled connection idle for the cluster's idle_timeout
// is closed by a per-pool timer (armed when the first connection goes
// idle, never per request) and is not reused past it.
//
// Circuit breakers (breaker.go): each cluster name has one Breaker, shared
// by its versions and pools, enforcing Envoy's DEFAULT thresholds with
// Envoy's accounting: connections from dial to close (idle ones too),
// requests in flight (Admit/Done), and pending requests, those without a
// connection yet, dialing or queued. At max_connections a request queues
// (FIFO, bounded by max_pending_requests and by its route timeout) and is
// handed a connection its pool releases, or a slot another close frees; a
// pool with no connection may always dial one, counted as an overflow, so
// one endpoint's idle connections never starve another. h2c transports
// and tcp_proxy dials cannot queue: beyond max_connections they fail with
// ErrOverflow. The happy path costs a few atomic adds and no allocation. A
// connection idle in its pool holds no buffers: they are lent (package
// connbuf) when it is handed out and given back when it is pooled, unless
// a queued request takes it at once. Plain TCP
// connections use raw non-blocking reads and writes (package sockio);
// BeginAt, GetAt and PutAt take a clock reading the caller already has, so
// the hot path reads the clock less often.
//
// Response heads from an HTTP/2 upstream are bounded like HTTP/1.1 ones
// (http1.MaxHeadBytes, Envoy's default max_response_headers_kb): the h2c
// transport advertises it as SETTINGS_MAX_HEADER_LIST_SIZE and fails a
// response beyond it (HPACK's dynamic table lets a few wire bytes decode
// to megabytes). FuzzH2Upstream in package hcm drives the proxy to an
// upstream answering with arbitrary frames.
//
// Response integrity: HTTP/1.1 pairs a response with a request only by
// order, so a byte the server sends beyond the response it was asked for
// would be read as the next request's response, possibly another
// client's. A connection is therefore pooled only when its response ended
// exactly at the end of what was read (the caller checks its buffer), and
// every idle connection is probed before reuse (a non-blocking peek,
// independent of any read deadline left armed): anything readable, bytes
// or a close, and it is closed instead of reused. The probe is the one
// system call reuse costs; the runtime poller cannot stand in for it,
// since each read session resets the readiness an idle socket collected.
// What the probe cannot see is a byte the server sends after it, while
// the request is on its way: that race is the server's own desync and is
// as narrow as the time between probe and write.
//
// Detached connections (detach.go): an event loop that waits on its own
// epoll set, outside the Go runtime's poller, takes pooled connections
// from the usual GetAt/GetIdle (dial, breaker queue and pending timeouts
// stay here) and detaches them: Detach duplicates the plain socket's
// descriptor (non-blocking, close-on-exec) and closes the net.Conn, which
// removes it from the runtime's poller, whose every readiness edge would
// otherwise wake the runtime's poller thread. TLS connections are not
// detached. Invariants: a detached connection holds its connection slot
// from Detach until it is closed (Discard, or a failed Attach) or
// attached again, and keeps its buffers; it is never in its pool's idle
// list: PutAt closes a detached connection (decision: fail closed rather
// than attach behind the loop's back, whose epoll set may still hold the
// descriptor), so the loop attaches a connection before returning it.
// The loop keeps its own idle list of detached connections, probing each
// before reuse (ProbeDetached, the same peek as the pool's probe),
// expiring them on the pool's idle timeout (Pool.IdleTimeout), closing
// them when the pool left the configuration (Pool.Closed), and attaching
// and returning them to the pool when requests queue for a connection
// (Pool.Queued at release; Pool.OnQueue, called whenever a request queues,
// for the ones it already holds). Attach
// makes a net.Conn of the descriptor again, wrapped as a dialed one is,
// and closes the loop's descriptor, which the loop must have removed
// from its epoll set. A detached connection is owned by one goroutine:
// its Abort (shutdown(2)) and Discard must not race, since a closed
// descriptor's number may be reused at once.
//
// Load balancing follows Envoy: ROUND_ROBIN (weighted by
// load_balancing_weight through a precomputed smooth schedule when weights
// differ), RANDOM (weighted), LEAST_REQUEST (power of two choices over
// active requests, divided by weight when weights differ). Health: HEALTHY
// and UNKNOWN hosts are healthy, DEGRADED hosts are used only when no
// healthy host exists, all other statuses are unhealthy. With Envoy's
// default healthy_panic_threshold of 50%, when fewer than half of the hosts
// are healthy or degraded the cluster is in panic and balances across all
// hosts. A cluster with no hosts yields no pick (the caller answers 503).
//
// Retries (breaker.go): StartRetry/EndRetry hold one of max_retries for a
// retry the router decided on, and the Breaker counts Envoy's retry
// statistics (upstream_rq_retry, _overflow, _success, _limit_exceeded,
// retry_or_shadow_abandoned).
//
// TLS (tls.go): a cluster with an UpstreamTlsContext dials TLS, the
// connect timeout covering the handshake, and verifies the server with
// package peercert. Its certificate and validation Secrets are looked up
// (Manager's Secrets) at every handshake, so rotation needs no rebuild;
// the context's fingerprint is part of the pool key, so connections made
// under another context are never reused. A pooled TLS connection is read
// through crypto/tls; its reuse probe peeks the socket and checks that
// crypto/tls holds no record read ahead. A failed handshake is a TLSError
// carrying Envoy's transport failure reason.
//
// STATIC clusters carry their endpoints (pipes dial Unix sockets);
// ORIGINAL_DST clusters create a host per original destination on demand
// (PickOriginal), keyed also by protocol and original-source address, and
// close hosts unused for 5 s (Envoy's cleanup_interval). Every upstream
// socket gets the cluster's upstream_bind_config socket options before
// connect (SO_MARK), and with original_src binds to the client's address.
// tcp_proxy dials unpooled connections with the same options (Dial).
//
// Invariants: a Cluster is immutable after Build except for its round-robin
// cursor and the pools' counters; every method is safe for concurrent use.
package upstream
