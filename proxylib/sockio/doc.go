// Package sockio gives the proxy's hot HTTP/1.1 connections a Read and
// Write that issue the read(2) and write(2) system calls directly, without
// the Go runtime's blocking-syscall bookkeeping, while still waiting for
// readiness through the runtime's network poller.
//
// Why: every net.Conn Read and Write goes through the runtime's
// entersyscall/exitsyscall. With one P (the proxy pinned to one core,
// GOMAXPROCS=1) that costs far more than the system call itself: entering a
// system call wakes the runtime's monitor thread whenever it was asleep
// (which it is each time the proxy idles between requests), and the monitor
// then hands the P to another thread whenever a loopback write runs longer
// than its 20 µs tick (a loopback write delivers the segment to the
// receiver inline). Both mean futex wake-ups, extra threads and context
// switches on the one core, per request. The sockets are non-blocking, so
// read and write return at once (EAGAIN when they would block); the only
// blocking wait is the poller's, which keeps deadlines and Close working
// exactly as for a net.Conn.
//
// Session and ReadNow serve a connection the way an event loop does: the
// caller reads and handles what is available inside one poller read
// session and waits in the same session, so it may wait without first
// reading until EAGAIN when the last read reported that nothing is pending.
// On TCP that report comes from the kernel once TrackPending enabled it
// (TCP_INQ, which also counts a FIN that arrived with or after the data),
// never from a short read, so an end of stream is never missed; otherwise
// ReadNow always reports that more may be pending.
//
// Invariants:
//   - Only stream sockets whose net.Conn exposes a syscall.RawConn are
//     wrapped (TCP and Unix); anything else (TLS, test pipes) is returned
//     unchanged by Wrap.
//   - Read and Write have net.Conn semantics: Read returns io.EOF at end of
//     stream and never (0, nil) for a non-empty buffer; Write writes all of
//     p or returns an error; deadline expiry yields an error matching
//     os.ErrDeadlineExceeded; errors are *net.OpError values.
//   - A Conn serves one reader and one writer at a time (as every
//     connection in the proxy is used); the callbacks handed to the poller
//     are built once per Conn, so Read and Write do not allocate.
//
// LazyDeadline is how every keep-alive connection of the proxy (downstream
// and upstream) arms its deadlines without touching a runtime timer per
// request. Decision: a kept deadline is never early, only late by its slack
// (1 % of the timeout, at most 1 s). An earlier design kept a deadline up
// to 1 % before the exact one, so a 300 ms route timeout could answer 504
// at 297 ms; a timeout that ends early is wrong, one that ends 1 % late is
// not observable against a network's own jitter for short timeouts, nor
// against the timeout itself for long ones. The slack is also what a busy
// connection pays: a deadline is re-armed (a runtime timer moved in its
// heap, under the descriptor's lock) about once per slack. An earlier cap
// of 10 ms held an hour's idle timeout to 10 ms but re-armed each of a
// connection's idle and stream idle deadlines 100 times a second: at 128
// connections of ~200 requests a second each that was about one re-arm per
// request (counted with a uprobe on the runtime's deadline setter), two
// under load; at 1 s the long timeouts (an hour's idle timeout, the
// minutes of a stream idle timeout) are re-armed once a second, and no
// timeout of 1 s or less changes.
//
// Shutdown is how another goroutine ends a connection a session serves:
// Close waits for the session's callback to return (the callback holds the
// descriptor's read lock), while shutdown(2) through RawConn.Control takes
// only a reference, so it returns at once and makes every wait and read on
// the socket end (the callback's own waits on other sockets need their own
// Shutdown). The caller closes the connection afterwards, from the
// goroutine that serves it.
//
// Data enters as an accepted or dialled net.Conn and leaves as the same
// socket behind a net.Conn; NetConn returns the original for code that
// needs its concrete type (CloseWrite, splice).
package sockio
