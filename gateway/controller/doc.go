// Package controller is nodemesh's Kubernetes controller for the
// cluster-wide side of Gateway API: GatewayClass acceptance (with
// status.supportedFeatures), Gateway address assignment, and the status of
// GatewayClasses, Gateways (with listeners), HTTPRoutes, GRPCRoutes,
// TLSRoutes, TCPRoutes and UDPRoutes
// (routestatus.go writes route status once for every kind), and
// BackendTLSPolicies (policystatus.go: our Gateways as ancestors, other
// controllers' ancestors kept), and ListenerSets whose parent is one of
// our Gateways (listenerset.go).
//
// Data enters from informers (the same kube provider the agents use, so
// the controller computes status with exactly the translation the nodes
// run) plus every node's NodeProxyStatus report (api/v1alpha1). It leaves
// as status subresource writes. One reconcile at a time: a burst of events
// is debounced into one pass, and a periodic resync notices nodes whose
// heartbeat stopped (a report update that only moves the heartbeat does
// not trigger a pass, so many nodes do not cost a pass every heartbeat).
//
// Programmed across nodes. Translation decides whether a Gateway can be
// programmed at all (address, listeners, certificates). When it can, the
// Gateway's and each programmable listener's Programmed condition is True
// only when every live node (a report whose heartbeat is recent, for our
// controllerName) says its proxies acknowledged that Gateway at the
// Gateway's current generation. A proxy rejection (NACK) on any node makes
// it False with reason Invalid and the proxy's own message, prefixed with
// the node; a node that has not caught up makes it False/Pending naming
// the node. With no node reporting, it is False/Pending. Reports whose
// heartbeat is older than the staleness window (default 90s: three missed
// 30s heartbeats) are ignored, so a dead node does not hold every Gateway
// hostage; deleting a Node garbage-collects its report (owner reference).
// A ListenerSet's listeners are programmed with their parent Gateway, so
// its Programmed conditions follow the parent's node verdict. Nodes
// report per Gateway generation, and editing a ListenerSet does not move
// its parent's generation: for a moment after such an edit the set can
// read Programmed while nodes still apply it (the Gateway API offers no
// generation that covers both objects).
//
// Gateway Services (service.go; WithGatewayServices, the binary's default
// --gateway-services). As Cilium does, each Gateway of ours gets a Service
// of type LoadBalancer, named nodemesh-gateway-<gateway> (cut to 63
// characters with a hash when longer), in the Gateway's namespace and
// controlled by it (owner reference, so deleting the Gateway deletes it).
// Its labels are spec.infrastructure.labels plus
// gateway.networking.k8s.io/gateway-name; its annotations are
// spec.infrastructure.annotations plus lbipam.cilium.io/ips listing the
// IPAddress values of spec.addresses (Cilium LB-IPAM's request
// annotation); keys other controllers add are kept, keys the Gateway no
// longer asks for are removed (the Service remembers which are ours). It
// has one port per distinct listener port and protocol (UDP for UDP
// listeners, else TCP), no selector and no endpoints: nothing forwards
// to Pods, the node proxies listen on the load-balancer address itself
// (the agents' --gateway-address-routes, datapath/localroute, says why).
// allocateLoadBalancerNodePorts is false, as nothing listens on node
// ports. The Gateway's address is the first IP in the Service's
// status.loadBalancer.ingress; until the load balancer writes one the
// Gateway is Programmed=False/AddressNotAssigned naming the Service, and a
// requested address the load balancer did not give makes it
// AddressNotUsable (translation compares). The load balancer should mark
// the address ipMode Proxy where kube-proxy runs beside nodemesh: in VIP
// mode kube-proxy rejects traffic for a Service without endpoints (the
// lab's load balancer, internal/lab/lbipam, does). A Service of that name
// not controlled by the Gateway is left alone and the Gateway reports
// it; one left by a deleted Gateway of the same name (other UID), or whose
// Gateway is gone or no longer ours, is deleted. Without
// WithGatewayServices the pool below assigns Gateway addresses too.
//
// GatewayClass parameters (classconfig.go). A Gateway whose class names
// an accepted CiliumGatewayClassConfig gets a Service with the config's
// externalTrafficPolicy, loadBalancerClass (immutable on a Service: a
// change replaces the Service), ipFamilies, ipFamilyPolicy and
// trafficDistribution; fields the API server defaults are left to it
// when the config is silent. Every config one of our classes names gets
// an Accepted condition: True, or False/InvalidParameters naming the
// fields nodemesh cannot honour (gateway/doc.go lists them); configs no
// class of ours names are not written.
//
// Host-network mode (hostnet.go; WithHostNetwork, the binary's
// --gateway-host-network and --gateway-host-network-nodes). No Service
// is made (those a Gateway got in the load-balancer mode are deleted).
// The nodes serving Gateways are the Nodes the selector matches (empty:
// all) that have an InternalIP; each Gateway's status.addresses lists the
// first InternalIP of each, by Node name, at most 16 (the API's bound),
// and follows Node label and address changes (a Node watch; kubelet's
// heartbeats do not trigger a pass). Agents serve a Gateway where their
// own address is listed (gateway/doc.go says why the node address and not
// the wildcard). Programmed counts only the selected nodes' reports: the
// others serve nothing for the Gateway. With no node selected, every
// Gateway is Programmed=False/AddressNotAssigned saying so. Translation
// is given the first selected node's address for every Gateway, which is
// what each agent does with its own, so port clashes between Gateways
// read the same here as on the nodes. GatewayInfrastructure is not
// claimed in this mode: there is no generated object to carry its labels.
//
// Ingress Services (ingressservice.go; also WithGatewayServices). As
// Cilium's Ingress controller does, each Ingress load balancer gets a
// Service of type LoadBalancer: a dedicated Ingress
// nodemesh-ingress-<ingress> in its namespace, controlled by the Ingress
// and carrying its annotations with Cilium's load-balancer prefixes
// (IngressLBAnnotationPrefixes: lbipam.cilium.io/, service.beta.kubernetes.io/
// and the like, ING-08's default list, kept as the Gateway's
// infrastructure annotations are); the shared set one Service,
// nodemesh-ingress, in the controller's namespace
// (WithSharedIngressNamespace, the binary's $POD_NAMESPACE), labelled
// ingress.nodemesh.io/shared, deleted once no Ingress is shared. Ports
// http 80 and https 443 (the Ingress listener ports), no selector, no
// node ports, as for Gateways. The Ingress's address, written to its
// status.loadBalancer and read there by the agents, is the first IP the
// load balancer put in the Service's status; until then the Ingress has
// none and is not served (its Event says no address is assigned). The
// address pool is then unused. A Service of that name the controller did
// not make is left alone and the Ingress stays without an address; an
// Ingress that leaves our class loses its Service and the address we
// wrote (remembered per Ingress, as its Service and the address in it
// may be gone first). With Gateways in host-network mode and Ingresses
// not, Ingresses take their addresses from the pool.
//
// Ingress host-network mode (hostnet.go, WithIngressHostNetwork, the
// binary's --ingress-host-network and --ingress-host-network-nodes;
// independent of the Gateways' mode, as Cilium's two switches are). No
// Ingress Service is made (those of the load-balancer mode are deleted,
// as for Gateways). The nodes are selected as for Gateways (Node labels,
// empty: all; first InternalIP; the same Node watch and the same code),
// every Ingress load balancer is translated on the first selected node's
// address, so port clashes between Ingresses read the same here as on
// each node (gateway/doc.go: the older keeps the port), and a served
// Ingress's status.loadBalancer lists every selected node's address (at
// most 16, as for Gateways), which the agents read to know whether they
// serve it. An Ingress that is not served, a port clash among them, shows
// no address and gets its Warning Event naming the Ingress that holds
// the port.
//
// Mesh. An XMesh (gateway.networking.x-k8s.io/v1alpha1, experimental
// channel only) naming our controllerName is Accepted with
// status.supportedFeatures = MeshFeatures (mesh.go): that is where the
// Gateway API conformance suite reads the mesh features, and it drops
// mesh features found in GatewayClass status, so they are claimed there
// only. An XMesh with spec.parametersRef is refused (InvalidParameters):
// nodemesh has no mesh parameters. XMeshes are listed on every pass
// instead of watched (they are few, and with standard CRDs the list is a
// cheap NotFound), so a new one is accepted within one resync. Routes
// with Service parents are refused (NotRedirected) while a live node
// reports it cannot send Services' traffic to its proxy
// (NodeProxyStatus cannotRedirect; gateway/doc.go, "GAMMA").
//
// Addresses. Gateways get an address from one configured pool, oldest
// Gateway first. A Gateway asking for addresses in spec.addresses gets the
// first one that is in the pool and not taken (translation then reports
// any other requested address AddressNotUsable); none usable leaves it
// unassigned (Programmed=False/AddressNotAssigned naming why). Assignments
// are sticky while the Gateway exists; on start the controller adopts the
// addresses already in Gateway status, so a restart moves nothing. A
// deleted Gateway frees its address at once. Agents read the address from
// status.addresses (kube.StatusAddresses) and never allocate themselves.
//
// Status writing. The controller owns the whole status of our
// GatewayClasses, Gateways and their ListenerSets, and only its own entries (controllerName)
// in route status.parents: other controllers' entries are kept as they
// are, and our entries for parentRefs that went away are removed. A
// condition keeps its lastTransitionTime while its status is unchanged.
// Writes go through the status subresource with optimistic concurrency:
// on a conflict the object is re-read and the merge redone (a bounded
// number of times; if the spec changed meanwhile, the next reconcile
// handles the new generation). Nothing is written when the merged status
// equals what is stored, so a steady cluster sees no writes.
//
// Decisions where the task was silent: the Controller itself knows nothing
// of replicas; nodemesh-controller --leader-elect runs it only while it
// holds a coordination.k8s.io Lease (the chart's default), so one replica
// writes status at a time, and address stickiness across a hand-over comes
// from adopting status on start;
// GatewayClasses that are not ours, and Gateways of such classes, are
// never written.
package controller
