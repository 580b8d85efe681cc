package v2

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// PortRule lists ports and, optionally, the L7 rules traffic to them must
// satisfy.
//
// +kubebuilder:pruning:PreserveUnknownFields
type PortRule struct {
	Ports []PortProtocol `json:"ports,omitempty"`

	TerminatingTLS *TLSContext `json:"terminatingTLS,omitempty"`
	OriginatingTLS *TLSContext `json:"originatingTLS,omitempty"`
	ServerNames    []string    `json:"serverNames,omitempty"`
	Listener       *Listener   `json:"listener,omitempty"`
	Rules          *L7Rules    `json:"rules,omitempty"`
}

// PortDenyRule lists denied ports.
//
// +kubebuilder:pruning:PreserveUnknownFields
type PortDenyRule struct {
	Ports []PortProtocol `json:"ports,omitempty"`
}

// PortProtocol is a port (a number, "0" for all ports, or a named
// container port), an optional range end, and a protocol (TCP, UDP, SCTP,
// ANY; default ANY).
//
// +kubebuilder:pruning:PreserveUnknownFields
type PortProtocol struct {
	Port     string `json:"port,omitempty"`
	EndPort  int32  `json:"endPort,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// TLSContext names the certificates of TLS interception.
//
// +kubebuilder:pruning:PreserveUnknownFields
type TLSContext struct {
	Secret      *SecretRef `json:"secret,omitempty"`
	TrustedCA   string     `json:"trustedCA,omitempty"`
	Certificate string     `json:"certificate,omitempty"`
	PrivateKey  string     `json:"privateKey,omitempty"`
}

// SecretRef names a Kubernetes Secret.
//
// +kubebuilder:pruning:PreserveUnknownFields
type SecretRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Listener redirects to a listener of a CiliumEnvoyConfig.
//
// +kubebuilder:pruning:PreserveUnknownFields
type Listener struct {
	EnvoyConfig *EnvoyConfigRef `json:"envoyConfig"`
	Name        string          `json:"name"`
	Priority    uint8           `json:"priority,omitempty"`
}

// EnvoyConfigRef names a CiliumEnvoyConfig or
// CiliumClusterwideEnvoyConfig.
//
// +kubebuilder:pruning:PreserveUnknownFields
type EnvoyConfigRef struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name"`
}

// L7Rules are the application-protocol rules of a port. At most one kind
// may be set.
//
// +kubebuilder:pruning:PreserveUnknownFields
type L7Rules struct {
	HTTP    []PortRuleHTTP  `json:"http,omitempty"`
	Kafka   []PortRuleKafka `json:"kafka,omitempty"`
	DNS     []PortRuleDNS   `json:"dns,omitempty"`
	L7Proto string          `json:"l7proto,omitempty"`
	L7      []PortRuleL7    `json:"l7,omitempty"`
}

// PortRuleHTTP is one allowed kind of HTTP request. Empty fields match
// everything; Path, Method and Host are regular expressions matching the
// whole value.
//
// +kubebuilder:pruning:PreserveUnknownFields
type PortRuleHTTP struct {
	Path   string `json:"path,omitempty"`
	Method string `json:"method,omitempty"`
	Host   string `json:"host,omitempty"`
	// Headers must be present: "Name" for presence, "Name: value" (or
	// "Name value") for a literal value.
	Headers       []string       `json:"headers,omitempty"`
	HeaderMatches []*HeaderMatch `json:"headerMatches,omitempty"`
}

// HeaderMatch requires a header value, or (with Mismatch) changes the
// request when it does not match.
//
// +kubebuilder:pruning:PreserveUnknownFields
type HeaderMatch struct {
	// Mismatch is "", LOG, ADD, DELETE or REPLACE.
	Mismatch string     `json:"mismatch,omitempty"`
	Name     string     `json:"name"`
	Secret   *SecretRef `json:"secret,omitempty"`
	Value    string     `json:"value,omitempty"`
}

// PortRuleKafka is one allowed kind of Kafka request. Empty fields match
// everything.
//
// +kubebuilder:pruning:PreserveUnknownFields
type PortRuleKafka struct {
	// Role is "produce" or "consume" (case-insensitive); it stands for a
	// set of API keys and excludes APIKey.
	Role       string `json:"role,omitempty"`
	APIKey     string `json:"apiKey,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
	ClientID   string `json:"clientID,omitempty"`
	Topic      string `json:"topic,omitempty"`
}

// PortRuleDNS is one allowed DNS name or pattern.
//
// +kubebuilder:pruning:PreserveUnknownFields
type PortRuleDNS struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// PortRuleL7 is a generic key-value rule of a proxylib parser.
type PortRuleL7 map[string]string

// IntOrString is an ICMP type given as a number or a name. It decodes
// from a JSON number or string and encodes back to the same form.
type IntOrString struct {
	IsString bool
	Int      int32
	Str      string
}

// MarshalJSON implements json.Marshaler.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.Str)
	}
	return json.Marshal(v.Int)
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = IntOrString{IsString: true, Str: s}
		return nil
	}
	var n int32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("ICMP type: want a number or a name, got %s", b)
	}
	*v = IntOrString{Int: n}
	return nil
}

// String renders the value as written.
func (v IntOrString) String() string {
	if v.IsString {
		return v.Str
	}
	return strconv.Itoa(int(v.Int))
}
