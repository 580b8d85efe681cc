// Package parser is the proxy's L7 parser framework for TCP protocols,
// with the contract of Cilium's proxylib: a Parser sees the bytes of one
// connection in both directions and answers each call of
//
//	OnData(reply, endStream bool, data [][]byte) (Op, int)
//
// with one operation on the front of the unconsumed data of that direction:
//
//   - More n: the parser needs at least n more bytes before it can decide;
//     it is called again when they arrived (or the stream ended).
//   - Pass n: forward n bytes. n may exceed the data given: the rest is
//     forwarded as it arrives without calling the parser again.
//   - Drop n: discard n bytes the same way.
//   - Inject n: write n bytes of this direction's inject buffer (filled
//     with Connection.Inject) at the current position.
//   - Error: the connection is closed (n is an error code for logs).
//   - Nop: nothing to do until more data arrives.
//
// The framework (Relay) calls OnData repeatedly while unconsumed data
// remains and the parser makes progress. data always holds exactly one
// contiguous slice, which the parser may read only during the call.
//
// Injection across directions: a parser may Inject into either direction
// at any time, e.g. a protocol error answer into the reply direction while
// it parses a request. Injected bytes of a direction are written at that
// direction's next frame boundary: right away when no Pass is in progress
// there, otherwise as soon as the Pass completed. So an answer injected for
// a denied request can never split a response being forwarded, and a
// parser that injects in request order keeps responses in request order.
//
// Bounds: unconsumed data of a direction is buffered up to MaxBuffer bytes
// (a More beyond it closes the connection), and the inject buffer of a
// direction up to MaxInject bytes (Inject returns how much it took); nothing
// is ever allocated from a length the peer announced.
//
// Concurrency: each direction runs on its own goroutine; parser calls are
// serialized by one lock per connection, which is never held while a socket
// is written, so a slow peer on one side cannot stall parsing on the other.
// Writes to a side are serialized and happen in the order they were
// decided.
package parser
