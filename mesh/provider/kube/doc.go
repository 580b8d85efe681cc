// Package kube is the Kubernetes-mode provider: it watches the API server
// with client-go informers and publishes the same input.Snapshot the file
// provider builds from a folder, so both modes run the same translation.
//
// Data flow: informers (GatewayClass, Gateway, HTTPRoute, ReferenceGrant,
// Service, EndpointSlice, TLS Secrets, Namespace) → change signal →
// debounce → Snapshot built from the informer caches → subscriber. The
// subscriber is called from one goroutine, one call at a time, so a burst
// of events (a `kubectl apply` of fifty objects) yields one translation,
// and a slow translation simply coalesces the events that arrive meanwhile.
//
// Decisions:
//   - Snapshots hold the informer caches' objects themselves, not copies.
//     Informer objects are shared and must never be modified; translation
//     reads only, which is the input package's contract anyway.
//   - Only Secrets of type kubernetes.io/tls are watched (a field selector),
//     since certificateRefs may only name those; a reference to another
//     Secret then reads as "not found", which gives the same
//     InvalidCertificateRef condition the spec asks for, without caching
//     every Secret of the cluster in every agent.
//   - managedFields are dropped from cached objects to save memory.
//   - Updates that cannot change translation are ignored: a GatewayClass or
//     HTTPRoute update with the same generation, labels and annotations is
//     a status write (often our own). Gateway updates always count, because
//     in Kubernetes mode a Gateway's address comes from its status (the
//     controller assigns it; see StatusAddresses).
//   - Watch publishes nothing until every informer has synced, so the first
//     translation never sees a half-listed cluster (which would withdraw
//     configuration that is in fact still wanted).
//
// The other direction, this node's NodeProxyStatus report, is written by
// gateway/nodereport, beside the controller that reads it.
package kube
