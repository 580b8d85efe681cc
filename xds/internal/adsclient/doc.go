// Package adsclient is a small xDS client for the xDS server's tests. It
// behaves like an Envoy proxy on one ADS stream, in state-of-the-world or
// delta mode: it subscribes to clusters and listeners, follows their
// references to endpoints, routes and secrets, acknowledges what it applies
// and rejects (NACKs) what a test tells it to.
//
// It keeps the applied resources and a log of every response, and checks
// after every applied response the property make-before-break must give a
// real proxy: every cluster a route refers to is known together with its
// endpoints (otherwise that route would answer 503), and no secret a
// listener uses disappears. Violations are recorded for the test to assert
// on.
//
// It is test support, not a proxy: the real consumer is proxylib.
package adsclient
