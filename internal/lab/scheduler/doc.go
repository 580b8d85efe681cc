// Package scheduler is the lab's scheduler: it binds every Pod that asks
// for the default scheduler and has no node yet to one of the lab's
// nodes, as kube-scheduler would for the placements tests and demos use.
//
// A node fits a Pod when it is Ready and not cordoned, its labels match
// spec.nodeSelector, it satisfies required node affinity (any of the
// nodeSelectorTerms; within a term every matchExpressions requirement on
// labels — In, NotIn, Exists, DoesNotExist, Gt, Lt — and every
// matchFields requirement on metadata.name, which is how DaemonSet Pods
// are pinned), and the Pod tolerates its NoSchedule and NoExecute taints.
// Among the nodes that fit, the one running the fewest Pods wins, ties by
// name: replicas spread across nodes. Preferred affinity, Pod
// (anti-)affinity, topology spread constraints and resources are not
// considered (a lab node has room for any Pod). A Pod with spec.nodeName
// set never reaches a scheduler; the API server binds it.
//
// A Pod that fits no node keeps PodScheduled=False with reason
// Unschedulable and a message counting why nodes were rejected, and a
// FailedScheduling Event; it is tried again whenever a Node changes.
package scheduler
