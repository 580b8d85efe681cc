// Package dns is the lab's cluster DNS: an authoritative server for the
// cluster domain (cluster.local) answering from the API server's Services
// and EndpointSlices, the names Pods resolve as they would with CoreDNS's
// kubernetes plugin.
//
// Names served (A records; the lab is IPv4 only):
//
//	<service>.<namespace>.svc.<domain>            the ClusterIP; for a
//	                                              headless Service the
//	                                              ready endpoints' addresses
//	<hostname>.<service>.<namespace>.svc.<domain> the endpoint with that
//	                                              hostname (StatefulSets)
//	<a-b-c-d>.<namespace>.pod.<domain>            a.b.c.d, read from the
//	                                              name like CoreDNS's "pods
//	                                              insecure"
//
// An ExternalName Service answers a CNAME to its external name, which is
// not chased. A name that exists without records of the asked type, or
// that only has names below it (<namespace>.svc.<domain>), answers
// NOERROR with no records; other names in the domain answer NXDOMAIN;
// names outside it are REFUSED: the server never forwards, so nothing in
// the lab resolves, let alone reaches, anything outside it. TTLs are 5
// seconds.
//
// Untrusted input: every query is parsed with golang.org/x/net's
// dnsmessage and answered only when it is a standard query with one
// question. UDP answers are at most 512 bytes (truncated with TC set, so
// resolvers retry over TCP); TCP connections are bounded in number (64),
// in queries (100 each) and in idle time (10 s).
package dns
