// Package listener owns the proxy's listening sockets: per-core
// SO_REUSEPORT TCP sockets per listener address, accept loops, TLS
// detection and termination with SNI-selected filter chains, and the
// hand-over of each accepted connection to its chain's Handler.
//
// Updates (Manager.Apply) keep every socket whose address is unchanged, so
// an update never rebinds a port or drops a connection; new addresses are
// bound before anything changes (a bind failure fails the whole update);
// removed addresses stop accepting at once and their connections drain
// through Handler.Shutdown, bounded by the drain timeout. A chain handler no
// longer referenced by any active listener is drained the same way, while
// handlers kept across updates continue serving their connections.
//
// Transparent listeners (policy listeners the datapath redirects to) bind
// an IP_TRANSPARENT SO_REUSEPORT group (package transparent); with the
// original_dst listener filter the connection's original destination is
// handed to the chain as its local address (ConnInfo.Local), and with
// original_src the client's address to bind upstream sockets to.
//
// Filter chain selection follows Envoy's pruning: destination_port (the
// chains naming the connection's original destination port, else those
// naming none), then server_names (the exact SNI, then "*.suffix"
// wildcards from the most specific, then the chain without server_names);
// no match closes the connection. With the TLS inspector the ClientHello
// is peeked with MSG_PEEK (inspect.go) — never consumed — and parsed for
// its SNI (clienthello.go, fuzzed): a chain with a DownstreamTlsContext
// then terminates TLS, one without gets the untouched socket (TLS
// passthrough: tcp_proxy forwards the ClientHello itself). The peek is
// bounded by max_client_hello_size (record headers included, as Envoy
// counts) and by listener_filters_timeout; it waits for more bytes on the
// poller, never spinning, and a peer that half-closes before the hello is
// complete is detected (POLLRDHUP). Without the inspector SNI is unknown
// and only chains without server_names match; plain text reaching a
// TLS-terminating chain after inspection is closed.
// Certificates are looked up by SDS secret name at handshake time, so a
// rotated Secret applies to new handshakes without touching listeners.
// Servers negotiate TLS 1.2 or 1.3 (Envoy's server default) and advertise
// the chain's alpn_protocols only. A chain with a validation context asks
// for client certificates (requires one with require_client_certificate),
// advertises its trusted CAs and verifies the certificate with package
// peercert under the validation context in force at the handshake (SDS
// Secrets are looked up then); ConnInfo.TLS hands the client's chain and
// whether it was validated to the connection manager.
package listener
