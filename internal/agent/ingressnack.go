package agent

import (
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
)

// ingressRejections lays the connected proxies' current rejections on
// the Ingresses whose resources they name (dataplane.Nack.Objects, read
// from the naming scheme, never from the proxy's text): a dedicated
// Ingress's own, or, for the shared listener set, every Ingress served
// in shared mode, since they all ride on it. A rejection counts while it
// is of the published version and the proxy has not acknowledged that
// version since; the proxy keeps serving what it had before, so the
// Ingress's newest configuration is not in force. One entry per Ingress
// and proxy, in the order of ings.
func ingressRejections(ings []gateway.IngressStatus, want map[string]string, proxies []dataplane.Proxy) []api.IngressRejection {
	if len(ings) == 0 || want == nil {
		return nil
	}
	var out []api.IngressRejection
	for _, ing := range ings {
		if !ing.Served {
			continue
		}
		for _, p := range proxies {
			if !p.Connected {
				continue
			}
			if msg, ok := rejectsIngress(p, ing, want); ok {
				out = append(out, api.IngressRejection{Namespace: ing.Key.Namespace, Name: ing.Key.Name,
					Message: "proxy " + p.Node + " rejected " + msg})
			}
		}
	}
	return out
}

// rejectsIngress returns the first rejection of p that names ing's
// resources, as "<type> version <v>: <proxy's text>".
func rejectsIngress(p dataplane.Proxy, ing gateway.IngressStatus, want map[string]string) (string, bool) {
	for _, ts := range p.Types {
		if ts.Nack == nil || want[ts.Type] == "" || ts.Nack.Version != want[ts.Type] || ts.Acked == want[ts.Type] {
			continue
		}
		for _, o := range ts.Nack.Objects {
			if o.Kind != dataplane.ObjectIngress {
				continue
			}
			own := o.Namespace == ing.Key.Namespace && o.Name == ing.Key.Name
			shared := o.Namespace == "" && o.Name == "" && ing.Mode == gateway.LoadBalancerShared
			if own || shared {
				return ts.Type + " version " + ts.Nack.Version + ": " + ts.Nack.Message, true
			}
		}
	}
	return "", false
}
