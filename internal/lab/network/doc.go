// Package network builds the lab's network out of network namespaces:
// what a cloud's VPC and a CNI plugin provide to a real cluster.
//
// Layout. One control-plane namespace holds the lab network, a bridge
// (lab0, 10.250.0.1/24) that stands for the wire between machines; the
// control plane, the cluster DNS and nodemesh-controller run there. Each
// node is a namespace of its own with eth0 on the bridge (node i, counted
// from 1, has 10.250.0.<10+i>) and a Pod CIDR 10.244.<i>.0/24; every Pod
// is a namespace behind a veth pair whose host end (lxc + 8 hex digits of
// the Pod's UID) stays in the node namespace and whose other end is the
// Pod's eth0:
//
//	control plane  lab0 10.250.0.1/24; 10.244.<i>.0/24 via node i
//	node i         eth0 10.250.0.<10+i>/24, default via 10.250.0.1;
//	               lo 10.244.<i>.1/32 (the Pods' gateway);
//	               10.244.<j>.0/24 via node j (native routing, no tunnel);
//	               10.244.<i>.<n>/32 dev lxc… for each local Pod
//	Pod            eth0 10.244.<i>.<n>/32, default via 10.244.<i>.1
//
// Nothing — no interface, address, route or rule — is created in the
// caller's own namespace, and the control-plane namespace does not
// forward, so nothing in the lab reaches beyond it. IPv4 only, as the
// Services (single-stack 10.96.0.0/16) are.
//
// Pod addresses are handed out from .2 up and reused after a Pod is gone;
// a node holds at most 253 Pods. Names are "<id>-cp", "<id>-node-<i>" and
// "<id>-pod-<uid>", where id comes from testbed.NewID, so a lab's
// namespaces carry its owner's process id and testbed.Sweep removes those
// of a lab whose process died (with whatever still runs in them).
// PodNamespace computes a Pod's namespace name from its UID, which is how
// `nodemesh lab exec` finds it without asking the lab's process.
//
// A namespace may have an /etc/netns/<name>/resolv.conf (written by
// AddPod and for nodes): `ip netns exec` shows it to commands as
// /etc/resolv.conf, which is how Pods get the cluster DNS.
package network
