// Package kubemode holds the end-to-end tests of nodemesh's Kubernetes
// mode against a real kube-apiserver: the kube provider
// feeding the agent, the agent's xDS server feeding the builtin proxy, the
// node status reporter, and nodemesh-controller writing status (all in
// the test process, except the proxy, which runs in a test bed network
// namespace where the backends are routed). They show
// that what the proxy acknowledges or rejects reaches the Gateway's
// Programmed condition on the API server, and that deleting a Gateway
// removes its listener and frees its address. The package has no non-test
// code.
package kubemode
