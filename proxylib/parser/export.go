package parser

// SetInjectLimit sets a Connection's inject bound outside Relay (parser
// unit tests drive OnData directly).
func SetInjectLimit(c *Connection, n int) { c.maxInject = n }

// Injected returns and clears the bytes queued in a direction (parser unit
// tests inspect what a parser injected).
func Injected(c *Connection, reply bool) []byte {
	i := dirIndex(reply)
	b := c.inject[i]
	c.inject[i] = nil
	return b
}
