package ir

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Policy is the proxy's half of network policy on one node: the
// transparent listeners the datapath redirects policed connections to, and
// the L7 rules those connections must satisfy. Producers: mesh/policy.
// Consumers: xds/translator (RBAC for HTTP and gRPC, the project's Kafka
// filter for Kafka).
//
// A policed connection reaches the listener of its direction and protocol
// with its original source and destination intact. A request (HTTP) or
// message (Kafka) on it is allowed when at least one policy of that
// listener matches: the connection's destination port equals Port, the
// local workload's side (destination for ingress, source for egress) is
// one of Endpoints, the remote side is in Peers, and the request matches
// the policy's rule (no rule: every request matches). Nothing matching
// means denied: HTTP 403 "Access denied", gRPC PERMISSION_DENIED, Kafka
// authorization errors.
type Policy struct {
	// Listeners lists at most one listener per direction and protocol,
	// sorted by name; each policy's direction and protocol must have one.
	Listeners []*PolicyListener `json:"listeners,omitempty"`
	// UpstreamMark is the SO_MARK the proxy puts on connections it opens
	// to original destinations, so the datapath never redirects them again.
	UpstreamMark uint32 `json:"upstreamMark,omitempty"`
	// AccessLogSocket, when set, is the Unix socket of the agent's access
	// log service: every policed request is reported there.
	AccessLogSocket string `json:"accessLogSocket,omitempty"`
	// HTTP and Kafka rules, sorted by name.
	HTTP  []*HTTPPolicy  `json:"http,omitempty"`
	Kafka []*KafkaPolicy `json:"kafka,omitempty"`
}

// PolicyDirection is the direction of a policed connection relative to
// the local workload the policy selects.
type PolicyDirection string

const (
	// PolicyIngress: the remote peer connects to the local workload.
	PolicyIngress PolicyDirection = "ingress"
	// PolicyEgress: the local workload connects to the remote peer.
	PolicyEgress PolicyDirection = "egress"
)

// L7Protocol is the application protocol a policy listener enforces.
type L7Protocol string

const (
	L7HTTP  L7Protocol = "http" // HTTP/1.1, HTTP/2 and gRPC
	L7Kafka L7Protocol = "kafka"
)

// PolicyListener is a transparent listener: it accepts connections for
// any destination and forwards each to its original destination.
type PolicyListener struct {
	// Name is "policy/<direction>/<protocol>".
	Name      string          `json:"name"`
	Direction PolicyDirection `json:"direction"`
	Protocol  L7Protocol      `json:"protocol"`
	// Address and Port are where the listener binds; the datapath
	// redirects to Port.
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	// OriginalSource makes upstream connections use the client's address.
	OriginalSource bool `json:"originalSource,omitempty"`
	// ConntrackMap, when set, is the datapath's pinned connection-tracking
	// map: the listener takes each connection's source identity from it
	// (and refuses connections it has no entry for), so peers are judged
	// by PeerSet.Identities as well as by address.
	ConntrackMap string `json:"conntrackMap,omitempty"`
}

// PolicyListenerName is the name of the listener of a direction and
// protocol.
func PolicyListenerName(d PolicyDirection, p L7Protocol) string {
	return PolicyNamePrefix + string(d) + "/" + string(p)
}

// PeerSet is a set of remote addresses: every address (Any), or those
// matching at least one term. Identities are the peer identities the
// terms stand for (sorted): a listener that learns a connection's source
// identity from the datapath (PolicyListener.ConntrackMap) matches them
// too. Only ingress HTTP policies may have identities without terms (a
// reserved identity without addresses, e.g. ingress on a node without an
// ingress address).
type PeerSet struct {
	Any        bool          `json:"any,omitempty"`
	Terms      []AddressTerm `json:"terms,omitempty"`
	Identities []uint32      `json:"identities,omitempty"`
}

// AddressTerm matches addresses inside Prefix but inside none of Except.
// Producers use Except to carve out the addresses of identities a prefix
// (or the whole world, 0.0.0.0/0 and ::/0) does not stand for.
type AddressTerm struct {
	Prefix string   `json:"prefix"`
	Except []string `json:"except,omitempty"`
}

// HTTPPolicy allows one kind of HTTP request between a set of local
// endpoints and a set of peers on one port.
type HTTPPolicy struct {
	// Name is unique among the HTTP policies of its direction and traces
	// back to the rule, e.g. "cnp/default/rule1/ingress/0/port/80/http/0".
	Name      string          `json:"name"`
	Direction PolicyDirection `json:"direction"`
	Port      uint32          `json:"port"`
	// Endpoints are the local workloads' addresses (single-address
	// prefixes): the destination for ingress, the source for egress.
	Endpoints []string `json:"endpoints"`
	// Peers are the remote side: the source for ingress, the destination
	// for egress.
	Peers PeerSet `json:"peers"`
	// Request is the rule; nil allows every request.
	Request *HTTPRequestRule `json:"request,omitempty"`
}

// HTTPRequestRule is a conjunction; empty fields match everything.
// Method, Path and Host are RE2 expressions matching the whole value of
// the method, the path (with its query, as sent) and the Host header
// (:authority). HeaderActions take no part in matching: they act on the
// requests the policy matches (see HeaderAction).
type HTTPRequestRule struct {
	Method        string              `json:"method,omitempty"`
	Path          string              `json:"path,omitempty"`
	Host          string              `json:"host,omitempty"`
	Headers       []HeaderRequirement `json:"headers,omitempty"`
	HeaderActions []HeaderAction      `json:"headerActions,omitempty"`
}

// HeaderRequirement holds when the named header is present and, if
// Present is false, has exactly Value (repeated headers joined with ",").
type HeaderRequirement struct {
	Name    string `json:"name"`
	Value   string `json:"value,omitempty"`
	Present bool   `json:"present,omitempty"`
}

// HeaderAction is a Cilium headerMatches entry with a mismatch action.
// It never decides whether a request is allowed. For a request the policy
// matches (every policy of the listener whose rule matches, in name
// order, not just the first), the header named Name is compared with
// Value — present with exactly that value (repeated headers joined with
// ","), or merely present for an empty Value — and on a mismatch the
// proxy acts before forwarding the request, in the order of the list:
//
//   - MismatchLog records the header as missing in the request's flow;
//   - MismatchAdd adds the header with Value (beside a present one);
//   - MismatchDelete removes a present header whose value differs from
//     a non-empty Value;
//   - MismatchReplace sets the header to Value.
//
// Each sees the headers as the earlier actions left them.
type HeaderAction struct {
	Name     string         `json:"name"`
	Value    string         `json:"value,omitempty"`
	Mismatch MismatchAction `json:"mismatch"`
	// Secret says Value came from a Secret: logs never show it.
	Secret bool `json:"secret,omitempty"`
}

// MismatchAction is what a HeaderAction does on a mismatch; the values
// are Cilium's.
type MismatchAction string

// Mismatch actions.
const (
	MismatchLog     MismatchAction = "LOG"
	MismatchAdd     MismatchAction = "ADD"
	MismatchDelete  MismatchAction = "DELETE"
	MismatchReplace MismatchAction = "REPLACE"
)

// KafkaPolicy allows one kind of Kafka request between a set of local
// endpoints and a set of peers on one port.
type KafkaPolicy struct {
	// Name is unique among the Kafka policies of its direction, e.g.
	// "cnp/default/p/egress/0/port/9092/kafka/0".
	Name      string          `json:"name"`
	Direction PolicyDirection `json:"direction"`
	Port      uint32          `json:"port"`
	Endpoints []string        `json:"endpoints"`
	Peers     PeerSet         `json:"peers"`
	// Request is the rule; nil allows every request.
	Request *KafkaRequestRule `json:"request,omitempty"`
}

// KafkaRequestRule is a conjunction; empty fields match everything.
type KafkaRequestRule struct {
	// APIKeys are the allowed request API keys (a Cilium role or apiKey,
	// already expanded). Empty allows every key.
	APIKeys []int16 `json:"apiKeys,omitempty"`
	// APIVersion is the only allowed request version when HasAPIVersion
	// is set.
	APIVersion    int16  `json:"apiVersion,omitempty"`
	HasAPIVersion bool   `json:"hasAPIVersion,omitempty"`
	ClientID      string `json:"clientID,omitempty"`
	// Topic is exact. Every topic a request names must be allowed by some
	// policy; requests that name no topic are judged without it.
	Topic string `json:"topic,omitempty"`
}

// MaxKafkaAPIKey is the largest API key a rule may name.
const MaxKafkaAPIKey = 32767

func (v *validator) policy(p *Policy, listeners map[string]bool, binds map[string]string) {
	have := map[string]*PolicyListener{}
	for i, l := range p.Listeners {
		obj := object{plural: "policy.listeners", idx: i}
		if l == nil {
			v.fail(obj, root, "nil listener")
			continue
		}
		if l.Direction != PolicyIngress && l.Direction != PolicyEgress {
			v.fail(obj, root.f("direction"), "unknown direction %q", l.Direction)
		}
		if l.Protocol != L7HTTP && l.Protocol != L7Kafka {
			v.fail(obj, root.f("protocol"), "unknown protocol %q", l.Protocol)
		}
		if want := PolicyListenerName(l.Direction, l.Protocol); l.Name != want {
			v.fail(obj, root.f("name"), "%q, want %q", l.Name, want)
			continue
		}
		obj = object{kind: "policy listener", name: l.Name}
		if have[l.Name] != nil || listeners[l.Name] {
			v.fail(obj, root.f("name"), "duplicate")
		}
		have[l.Name] = l
		listeners[l.Name] = true
		addr, err := netip.ParseAddr(l.Address)
		if err != nil {
			v.fail(obj, root.f("address"), "%v", err)
		}
		if l.Port == 0 || l.Port > 65535 {
			v.fail(obj, root.f("port"), "%d out of range 1-65535", l.Port)
		} else if err == nil {
			bind := netip.AddrPortFrom(addr, uint16(l.Port)).String()
			if other, dup := binds[bind]; dup {
				v.fail(obj, root.f("address"), "%s already bound by listener %q", bind, other)
			}
			binds[bind] = l.Name
		}
	}
	if p.AccessLogSocket != "" && (strings.ContainsRune(p.AccessLogSocket, 0) || !utf8.ValidString(p.AccessLogSocket)) {
		v.fail(object{kind: "policy", name: "accessLogSocket"}, root, "not a usable socket path (NUL or invalid UTF-8)")
	}
	names := map[string]bool{}
	for i, h := range p.HTTP {
		obj := object{plural: "policy.http", idx: i}
		if h == nil {
			v.fail(obj, root, "nil policy")
			continue
		}
		obj = v.rule(obj, "HTTP policy", h.Name, h.Direction, L7HTTP, h.Port, h.Endpoints, h.Peers, names, have)
		if r := h.Request; r != nil {
			f := root.f("request")
			v.regex(obj, f.f("method"), r.Method)
			v.regex(obj, f.f("path"), r.Path)
			v.regex(obj, f.f("host"), r.Host)
			for j, hd := range r.Headers {
				if !ValidToken(hd.Name) {
					v.fail(obj, f.i("headers", j).f("name"), "invalid header name %q", hd.Name)
				}
				if !ValidHeaderValue(hd.Value) || !utf8.ValidString(hd.Value) {
					v.fail(obj, f.i("headers", j).f("value"), "control characters or invalid UTF-8")
				}
				if hd.Present && hd.Value != "" {
					v.fail(obj, f.i("headers", j), "present and value are exclusive")
				}
			}
			for j, a := range r.HeaderActions {
				if !ValidToken(a.Name) || strings.HasPrefix(a.Name, ":") || strings.EqualFold(a.Name, "host") {
					v.fail(obj, f.i("headerActions", j).f("name"), "invalid header name %q", a.Name)
				}
				if !ValidHeaderValue(a.Value) || !utf8.ValidString(a.Value) {
					v.fail(obj, f.i("headerActions", j).f("value"), "control characters or invalid UTF-8")
				}
				switch a.Mismatch {
				case MismatchLog, MismatchAdd, MismatchDelete, MismatchReplace:
				default:
					v.fail(obj, f.i("headerActions", j).f("mismatch"), "unknown action %q", a.Mismatch)
				}
			}
		}
	}
	names = map[string]bool{}
	for i, k := range p.Kafka {
		obj := object{plural: "policy.kafka", idx: i}
		if k == nil {
			v.fail(obj, root, "nil policy")
			continue
		}
		obj = v.rule(obj, "Kafka policy", k.Name, k.Direction, L7Kafka, k.Port, k.Endpoints, k.Peers, names, have)
		if r := k.Request; r != nil {
			f := root.f("request")
			for j, key := range r.APIKeys {
				if key < 0 {
					v.fail(obj, f.i("apiKeys", j), "%d is negative", key)
				}
			}
			if r.HasAPIVersion && r.APIVersion < 0 {
				v.fail(obj, f.f("apiVersion"), "%d is negative", r.APIVersion)
			}
			if !r.HasAPIVersion && r.APIVersion != 0 {
				v.fail(obj, f.f("apiVersion"), "set without hasAPIVersion")
			}
			if !ValidKafkaTopic(r.Topic) && r.Topic != "" {
				v.fail(obj, f.f("topic"), "invalid topic %q", r.Topic)
			}
			if !ValidHeaderValue(r.ClientID) || !utf8.ValidString(r.ClientID) {
				v.fail(obj, f.f("clientID"), "control characters or invalid UTF-8")
			}
		}
	}
}

// rule checks what HTTP and Kafka policies share and returns the object
// to name in further errors.
func (v *validator) rule(obj object, kind, name string, d PolicyDirection, proto L7Protocol, port uint32,
	endpoints []string, peers PeerSet, names map[string]bool, listeners map[string]*PolicyListener) object {
	if name == "" || !utf8.ValidString(name) {
		v.fail(obj, root.f("name"), "empty or invalid UTF-8")
	} else {
		key := string(d) + "\x00" + name
		if names[key] {
			v.fail(object{kind: kind, name: name}, root.f("name"), "duplicate")
		}
		names[key] = true
		obj = object{kind: kind, name: name}
	}
	if d != PolicyIngress && d != PolicyEgress {
		v.fail(obj, root.f("direction"), "unknown direction %q", d)
	} else if listeners[PolicyListenerName(d, proto)] == nil {
		v.fail(obj, root.f("direction"), "no listener %q", PolicyListenerName(d, proto))
	}
	if port == 0 || port > 65535 {
		v.fail(obj, root.f("port"), "%d out of range 1-65535", port)
	}
	if len(endpoints) == 0 {
		v.fail(obj, root.f("endpoints"), "empty")
	}
	for j, e := range endpoints {
		if p, err := netip.ParsePrefix(e); err != nil || p != p.Masked() {
			v.fail(obj, root.i("endpoints", j), "%q is not a masked prefix", e)
		}
	}
	v.peerSet(obj, root.f("peers"), peers)
	if !peers.Any && len(peers.Terms) == 0 && (d != PolicyIngress || proto != L7HTTP) {
		v.fail(obj, root.f("peers"), "only ingress HTTP policies may name peers by identity alone")
	}
	return obj
}

// peerSet checks a set of addresses: any or masked terms with masked
// exceptions inside them.
func (v *validator) peerSet(obj object, f path, peers PeerSet) {
	if peers.Any == (len(peers.Terms) > 0 || len(peers.Identities) > 0) {
		v.fail(obj, f, "exactly one of any and terms (or identities) is needed")
	}
	for j, id := range peers.Identities {
		if id == 0 || j > 0 && id <= peers.Identities[j-1] {
			v.fail(obj, f.i("identities", j), "identities must be non-zero and strictly increasing")
		}
	}
	for j, t := range peers.Terms {
		p, err := netip.ParsePrefix(t.Prefix)
		if err != nil || p != p.Masked() {
			v.fail(obj, f.i("terms", j).f("prefix"), "%q is not a masked prefix", t.Prefix)
			continue
		}
		for k, e := range t.Except {
			q, err := netip.ParsePrefix(e)
			if err != nil || q != q.Masked() || q.Bits() <= p.Bits() || !p.Contains(q.Addr()) {
				v.fail(obj, f.i("terms", j).i("except", k), "%q is not a masked prefix inside %s", e, t.Prefix)
			}
		}
	}
}

// ValidKafkaTopic reports whether s can be a topic in a rule: 1 to 255
// characters of [a-zA-Z0-9._-]. Kafka itself caps names at 249 since 0.10;
// rules accept the older limit, as Cilium does.
func ValidKafkaTopic(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
