// Package address assigns Gateway addresses from a pool: the controller
// does it cluster-wide in Kubernetes mode, the agent does it for its own
// node in standalone mode, with the same rules. Assignments are sticky (a
// Gateway keeps its address while it exists), older Gateways win a
// contested request, a requested address must lie in the pool, and a
// restarted owner adopts the addresses already written in Gateway status.
// Pure: no clients, no clock.
package address
