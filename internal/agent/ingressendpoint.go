package agent

import (
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// ingressEndpointStatus is what a compilation says about the node's
// ingress endpoint: its identity, the policies that apply to it and each
// direction as compiled (Unenforced, Enforced or FailClosed). The
// proxies' view is applied later (proxiedIngressEndpoint). nil when the
// compiler does not model the endpoint.
func ingressEndpointStatus(res *policy.Result, enabled bool) *api.IngressEndpointStatus {
	if !enabled {
		return nil
	}
	st := &api.IngressEndpointStatus{Identity: uint32(model.IdentityIngress)}
	for _, id := range res.Identities.Identities {
		if id.ID == model.IdentityIngress {
			for _, l := range id.Labels {
				st.Labels = append(st.Labels, l.String())
			}
		}
	}
	if len(st.Labels) == 0 {
		st.Labels = []string{"reserved:ingress"}
	}
	for _, p := range res.Policies {
		if p.Ingress {
			name := p.Kind + "/" + p.Name
			if p.Namespace != "" {
				name = p.Kind + "/" + p.Namespace + "/" + p.Name
			}
			st.Policies = append(st.Policies, name)
		}
	}
	st.Ingress, st.Egress = directionStatus(nil), directionStatus(nil)
	if ip := res.Ingress; ip != nil {
		st.Ingress, st.Egress = directionStatus(&ip.Ingress), directionStatus(&ip.Egress)
	}
	st.Selected = st.Ingress.State != api.IngressUnenforced || st.Egress.State != api.IngressUnenforced || len(st.Policies) > 0
	return st
}

func directionStatus(d *ir.IngressDirection) api.IngressDirectionStatus {
	switch {
	case d == nil || !d.Enforced:
		return api.IngressDirectionStatus{State: api.IngressUnenforced}
	case d.DenyAll:
		return api.IngressDirectionStatus{State: api.IngressFailClosed, Reason: d.Reason, AllowRules: len(d.Allow), DenyRules: len(d.Deny)}
	default:
		return api.IngressDirectionStatus{State: api.IngressEnforced, AllowRules: len(d.Allow), DenyRules: len(d.Deny)}
	}
}

// proxiedIngressEndpoint returns a copy of st with the proxies' view
// applied to every enforced direction, as to the policies of the ingress
// endpoint (policyStatus): Rejected while a proxy refuses the
// publication, Pending until every connected proxy acknowledged it.
func proxiedIngressEndpoint(st *api.IngressEndpointStatus, rejected string, waiting bool) *api.IngressEndpointStatus {
	if st == nil {
		return nil
	}
	out := *st
	for _, d := range []*api.IngressDirectionStatus{&out.Ingress, &out.Egress} {
		if d.State == api.IngressUnenforced {
			continue
		}
		// What the proxies will enforce once they accept stays visible.
		next := ""
		if d.State == api.IngressFailClosed {
			next = " (once accepted: FailClosed: " + d.Reason + ")"
		}
		switch {
		case rejected != "":
			d.State, d.Reason = api.IngressRejected, "a proxy refused the Gateway and Ingress listeners that carry it and keeps its previous ones: "+rejected+next
		case waiting:
			d.State, d.Reason = api.IngressPending, "the node's proxies have not acknowledged the Gateway and Ingress listeners that carry it; their previous ones are in force"+next
		}
	}
	return &out
}
