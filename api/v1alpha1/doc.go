// Package v1alpha1 holds nodemesh's own API types (group nodemesh.io,
// version v1alpha1).
//
// NodeProxyStatus closes the NACK loop across nodes on Kubernetes: each
// node's agent keeps one cluster-scoped NodeProxyStatus named after its
// node, saying which generation of every Gateway it translated and whether
// that node's proxies acknowledged the result (with the proxy's error text
// when they rejected it). nodemesh-controller watches these objects and
// reports a Gateway Programmed only when every reporting node programmed
// it. Writing one small object per node, rather than one per Gateway,
// keeps the write rate proportional to nodes and the objects far below
// etcd's size limit (a Gateway entry is a few hundred bytes).
//
// The types are plain structs with hand-written deep copies (no code
// generator is needed); clients read and write them through the dynamic
// client and runtime.DefaultUnstructuredConverter. The CRD manifest is
// embedded in package api (CRDs).
package v1alpha1
