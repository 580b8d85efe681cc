package agent

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// dataplaneVerdict is what the node's proxies say about one Gateway's
// configuration: programmed, still pending, or rejected (with the proxy's
// own error text).
type dataplaneVerdict struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

// verdictFor closes the NACK loop for one Gateway: the configuration counts
// as programmed only once every connected proxy acknowledged every resource
// type at the published versions. A rejection is traced to objects by the
// names of the resources it rejected (dataplane.Nack.Objects, read from the
// naming scheme, never from the proxy's message): one of this Gateway's
// resources, or none that belongs to a Gateway, network policy, an
// Ingress or an Envoy config (a cluster, a secret, a name of no object),
// makes it Invalid with the proxy's message; another object's holds it
// Pending, since
// a proxy rejects an update of one type as a whole.
func verdictFor(gw input.Key, want map[string]string, proxies []dataplane.Proxy) dataplaneVerdict {
	var connected int
	var waiting []string
	for _, p := range proxies {
		if !p.Connected {
			continue
		}
		connected++
		for _, ts := range p.Types {
			if ts.Nack == nil || want[ts.Type] == "" || ts.Acked == want[ts.Type] {
				continue
			}
			if blames(ts.Nack, gw) {
				return dataplaneVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonInvalid),
					fmt.Sprintf("proxy %s rejected %s version %s: %s", p.Node, ts.Type, ts.Nack.Version, ts.Nack.Message)}
			}
			return dataplaneVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonPending),
				fmt.Sprintf("proxy %s rejected the %s update that carries this Gateway's changes, because of another resource: %s",
					p.Node, ts.Type, ts.Nack.Message)}
		}
		if !p.AckedAll(want) {
			waiting = append(waiting, p.Node)
		}
	}
	switch {
	case connected == 0:
		return dataplaneVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "no proxy is connected to this node's agent"}
	case len(waiting) > 0:
		sort.Strings(waiting)
		return dataplaneVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonPending),
			fmt.Sprintf("waiting for proxies to acknowledge the configuration: %s", strings.Join(waiting, ", "))}
	}
	return dataplaneVerdict{metav1.ConditionTrue, string(gwv1.GatewayReasonProgrammed),
		fmt.Sprintf("programmed on %d proxies", connected)}
}

// blames reports whether a rejection is gw's fault: it rejected one of
// gw's resources, or it cannot be laid at the door of any Gateway,
// policy, Ingress or Envoy config (each reports its own).
func blames(n *dataplane.Nack, gw input.Key) bool {
	attributed := false
	for _, o := range n.Objects {
		switch o.Kind {
		case dataplane.ObjectGateway:
			if o.Namespace == gw.Namespace && o.Name == gw.Name {
				return true
			}
			attributed = true
		case dataplane.ObjectPolicy, dataplane.ObjectIngress, dataplane.ObjectEnvoyConfig, dataplane.ObjectClusterwideEnvoyConfig:
			// Another user-facing object's: reported there.
			attributed = true
		}
	}
	return !attributed
}

// applyVerdict lowers a Gateway's Programmed conditions (its own and its
// listeners') to what the proxies report. A condition the translation
// already set to False keeps its reason: the proxies cannot make an invalid
// Gateway programmed.
func applyVerdict(st *gwv1.GatewayStatus, generation int64, v dataplaneVerdict) {
	lower := func(conds *[]metav1.Condition, reasonTrue string) {
		c := meta.FindStatusCondition(*conds, string(gwv1.GatewayConditionProgrammed))
		if c == nil || c.Status != metav1.ConditionTrue {
			return
		}
		reason := v.reason
		if v.status == metav1.ConditionTrue {
			reason = reasonTrue
		}
		meta.SetStatusCondition(conds, metav1.Condition{
			Type: c.Type, Status: v.status, Reason: reason, Message: v.message, ObservedGeneration: generation,
		})
	}
	lower(&st.Conditions, string(gwv1.GatewayReasonProgrammed))
	for i := range st.Listeners {
		lower(&st.Listeners[i].Conditions, string(gwv1.ListenerReasonProgrammed))
	}
}
