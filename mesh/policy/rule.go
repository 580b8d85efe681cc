package policy

import (
	"fmt"
	"net/netip"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// source identifies a policy object.
type source struct {
	kind      string // "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "NetworkPolicy"
	namespace string
	name      string
}

// Kinds of policy objects.
const (
	KindCNP  = "CiliumNetworkPolicy"
	KindCCNP = "CiliumClusterwideNetworkPolicy"
	KindKNP  = "NetworkPolicy"
)

func (s source) String() string {
	if s.namespace == "" {
		return s.kind + " " + s.name
	}
	return s.kind + " " + s.namespace + "/" + s.name
}

// prefix starts the names of everything derived from the policy:
// "cnp/<ns>/<name>", "ccnp/<name>", "knp/<ns>/<name>".
func (s source) prefix() string {
	switch s.kind {
	case KindCCNP:
		return "ccnp/" + s.name
	case KindKNP:
		return "knp/" + s.namespace + "/" + s.name
	}
	return "cnp/" + s.namespace + "/" + s.name
}

// parsed is a policy object after validation, before it meets identities.
// It depends only on the object, so a rejected update can fall back to
// the last version that parsed.
type parsed struct {
	src      source
	rules    []*rule
	cidrs    []netip.Prefix
	warnings []string
	// dnsAtL4 names the DNS rule lists (every name allowed) compiled as
	// the L4 allow of their ports.
	dnsAtL4 []string
}

// rule is one allow or deny statement: which local endpoints (subject),
// which direction, which peers, which ports and what L7 rules.
type rule struct {
	// name is "<policy prefix>[/specs/<k>]/<direction>[Deny]/<i>".
	name    string
	subject selector
	dir     model.Direction
	deny    bool
	// enables says whether selecting an endpoint puts it into default
	// deny in dir (Cilium's enableDefaultDeny, default true).
	enables bool
	peers   peers
	// peersUnset: the rule named no peer field at all.
	peersUnset bool
	// ports empty: every port and protocol (an L3-only rule).
	ports []portRule
	auth  bool
}

// portRule is one toPorts entry (or the ICMP types of a rule).
type portRule struct {
	specs []portSpec
	kind  l7Kind
	// l7 holds the L7 rules of kind; base+idx numbers them within the
	// rule (a rule left out because it can never match keeps its number).
	l7   []l7Entry
	base int
}

// l7Entry is one HTTP or Kafka rule; a nil rule matches every request.
type l7Entry struct {
	idx   int
	http  *ir.HTTPRequestRule
	kafka *ir.KafkaRequestRule
}

// fieldError is a problem with one field of a policy.
func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}
