// Package connbuf lends the fixed-size I/O buffers of the proxy's HTTP/1.1
// connections, downstream and upstream, so that a connection holds buffers
// only while it moves bytes, not while it idles between requests.
//
// Why: a connection that kept its own buffers for life kept four of them
// per proxied keep-alive pair (read and write, each side), 64 KiB in all,
// although between requests it holds no byte. Under many connections that
// is both memory (8 MiB of buffers at 128 connections, nearly all of it
// idle) and cache: every request touched the first lines of its
// connection's own buffers, which sit at the same offsets of
// page-aligned 16 KiB blocks and so compete for the same few cache sets,
// and with 128 connections in rotation none of them was still cached when
// its connection's turn came again. Lent buffers come back last in, first
// out, so the next request served, whichever connection it arrives on,
// reuses the buffer the previous one just released, still in cache, and
// the number of buffers in use follows the requests in flight instead of
// the open connections. This is how event-driven proxies treat buffers
// (they free a keep-alive connection's buffers until its next request).
//
// Decision: a sync.Pool of *[Size]byte. It keeps a per-P cache (no lock
// and no contention with GOMAXPROCS > 1), hands back the buffer put last
// on the same P, and lets the garbage collector shrink the pool after a
// burst (a buffer survives one collection unused). Get allocates only when
// the pool is empty; Put and Get of a pointer allocate nothing, so the
// keep-alive request stays allocation-free. A buffer that grew beyond Size
// (a long request head, a large response head) is not a pool buffer and
// is left to the garbage collector when released.
//
// Invariant for users: after Put, nothing may read or write the buffer or
// any slice of it (parsed header views included); the caller sets its own
// references to nil in the same step.
package connbuf
