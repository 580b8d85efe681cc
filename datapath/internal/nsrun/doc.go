// Package nsrun runs code inside another network namespace.
//
// A network namespace belongs to an OS thread, not to a goroutine, so Do
// locks the calling goroutine to its thread, switches the thread into the
// namespace, runs fn and switches back. Sockets created inside fn stay in
// that namespace for their whole life and may be used from any goroutine
// afterwards. Goroutines started inside fn do not inherit the namespace.
//
// If the thread cannot be switched back, it is left locked so the Go
// runtime retires it instead of reusing it in the wrong namespace.
package nsrun
