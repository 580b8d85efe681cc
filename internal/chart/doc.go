// Package chart tests the Helm chart in charts/nodemesh with the real helm
// CLI (helm.sh/helm/v4, pinned by the nested module internal/tools/helm and
// built once into conformance/.cache/helm-<version>/): `helm lint`, and
// `helm template` of the default values and of proxy.engine=envoy against
// golden manifests (testdata/*.yaml, rewritten with -update). It also
// checks that the chart's crds/ equal api/crds/, the CRDs controller-gen
// generates, so the API has one source of truth (`make generate` copies
// them).
//
// The chart's RBAC is derived from the clients the code uses: the informers
// of mesh/provider/kube (list, watch, Ingresses and IngressClasses
// included), gateway/nodereport (get Node; get, create, update
// NodeProxyStatus), gateway/controller (list, watch NodeProxyStatus; get
// and update status of GatewayClass, Gateway, HTTPRoute, Ingress; create
// Event for Ingress problems; create, update, delete each Gateway's
// LoadBalancer Service), the policy watch of mesh/provider/kube (list, watch Pods,
// Nodes, NetworkPolicies and the cilium.io policy kinds; get and patch the
// status of the cilium.io ones), mesh/provider/kube/ciliumidentity (agent:
// get, list, watch, create CiliumIdentities; controller: list, watch Pods,
// list, watch, delete CiliumIdentities) and client-go's LeaseLock (get,
// create, update Lease). The test API server authorizes everything, so
// nothing yet proves the list complete by running the binaries under
// these roles.
//
// Metrics: agent, builtin proxy and controller each have
// <component>.prometheus.enabled (default true) and .port (9962, 9964,
// 9963, Cilium's agent, Envoy and operator ports). When enabled the
// binary gets --metrics-address=:<port> (the node's addresses for the
// host-network agent and proxy, the Pod's for the controller), the
// container a "prometheus" port, and the Pod the prometheus.io/scrape and
// prometheus.io/port annotations that annotation-based Prometheus
// configurations discover; when off, metrics stay on the binary's
// loopback default (internal/metrics). With proxy.engine=envoy the
// proxy's setting does not apply: Envoy's metrics are on its admin
// endpoint.
package chart
