// Package ciliumidentity allocates workload identities for the whole
// cluster as cilium.io/v2 CiliumIdentity objects, as Cilium's CRD
// identity backend does, and collects the ones no Pod uses any more. The
// agents use the Allocator (an identity.Allocator the identity Manager
// asks for numbers); nodemesh-controller runs the Collector.
//
// # Objects
//
// An identity is one cluster-scoped CiliumIdentity: its name is the
// number in canonical decimal, in Cilium's cluster range 256..65535, and
// security-labels is the label set with each key written "source:key"
// ("k8s:app": "web"), as Cilium writes it. As Cilium 1.18 does, only the
// namespace label (io.kubernetes.pod.namespace) is copied to the object's
// metadata.labels. Objects are never updated: a number means one label
// set for as long as its object exists.
//
// Every object from the API server is hostile until parsed. A name that
// is not a canonical decimal number in the range, security-labels that
// are empty, have a key without a source, hold more than MaxLabels labels
// or more than MaxLabelBytes bytes, make the object malformed: it is
// logged ("ignoring CiliumIdentity", with the reason) and kept in the
// watch cache as its metadata only, so it costs no memory beyond its
// name. A malformed object's number is never used by allocation and is
// never deleted by the collector (it is not ours to judge).
//
// # Allocation
//
// The Allocator watches every CiliumIdentity and indexes the well-formed
// ones by label set. Start returns once the watch has listed them all, so
// a restarted agent finds every number it and its peers handed out before
// it allocates anything: numbers survive restarts. An API server that does
// not serve the CiliumIdentity CRD makes Start fail with an error saying
// so, instead of a watch retrying for ever.
//
// Allocate looks a set up in the index; found under several numbers
// (possible only after the rare race below), the lowest wins, the choice
// every agent makes. A set not found is created with create-if-absent at
// a candidate number, a hash of the set's canonical text, or the next
// number after it (wrapping) that the cache does not show taken. When the
// create finds the name taken (AlreadyExists), the object is re-read: if
// it holds the same labels, a peer won the race and its number is
// adopted; otherwise the probe moves on. Because every agent probes the
// same numbers in the same order for a set and the API server decides
// each name once, agents allocating one set at the same moment meet on
// one number. A hash rather than the lowest free number also keeps
// different sets from contending for the same names, and gives a set its
// old number back after it was collected if nobody took it meanwhile.
// Cilium picks a random free number; nothing depends on the order.
//
// Each API call is bounded (WithTimeout, default 10s) and a set meets at
// most 32 concurrent takers before Allocate gives up on it; a set that
// fails gets no number in this round (its Pods get no identity, reported
// as a problem of the identity State) and is retried on the next one.
//
// An agent that sees an identity it handed out in its last Allocate
// deleted re-creates it at once with the same number and labels: the
// collector may decide in the instant before it sees a new Pod, and the
// Pod keeps its number. A set the agent no longer hands out is not
// re-created.
//
// Remaining race: if an object is deleted while two agents probe past its
// number at different moments, one may create the set there and the
// other after it, leaving two numbers. Every agent then converges on the
// lowest (the lookup rule) and the collector deletes the other one after
// the grace period, since a duplicate counts as unused.
//
// # Garbage collection
//
// The Collector (run by nodemesh-controller, one replica per cluster)
// watches CiliumIdentities, Pods and Namespaces. An identity is used when
// a Pod that has not finished (and does not use the host network) has its
// label set, computed by the same function the agents use, and it is the
// lowest number for that set. A Pod counts from the moment it exists,
// before it has an address. An identity is deleted once it has been seen
// unused in every pass for the grace period (WithGrace, default 5m,
// passes every WithInterval, default 1m), with the object's UID as a
// precondition. The grace period is measured on the controller's clock
// from its first sighting, so it covers an identity an agent created for
// a Pod the controller has not seen yet, clock skew between machines does
// not matter, and a restarted controller waits a full period again. Five
// minutes is long next to watch latency and short enough that churn does
// not fill the 16-bit range; it also keeps a collected number from
// meaning another label set while connection-tracking entries of the old
// meaning may still be around. The collector's label filter and cluster
// name must be the agents' (nodemesh-controller takes the same --labels
// and --cluster-name flags), or it would see used identities as unused.
package ciliumidentity
