package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
	corev1 "k8s.io/api/core/v1"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/mesh/ir"
	headermatchv1 "github.com/nodemesh/nodemesh/proxylib/api/headermatch/v1"
	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

// l7Kind is the L7 protocol of a port's rules.
type l7Kind uint8

const (
	l7None l7Kind = iota
	l7HTTP
	l7Kafka
)

func (k l7Kind) String() string {
	switch k {
	case l7HTTP:
		return "http"
	case l7Kafka:
		return "kafka"
	}
	return "none"
}

func (k l7Kind) protocol() ir.L7Protocol {
	if k == l7Kafka {
		return ir.L7Kafka
	}
	return ir.L7HTTP
}

// secretLookup finds a Secret by namespace and name.
type secretLookup func(namespace, name string) *corev1.Secret

// httpRule converts one Cilium HTTP rule. It returns nil (and no error)
// for a rule that can never match: a header match whose Secret is missing
// and that has no fallback value (Cilium fails such matches); warn says
// why. A header match without a mismatch action is a requirement
// (presence when it has no value); one with an action becomes a
// HeaderAction, which never restricts the rule.
func httpRule(h ciliumv2.PortRuleHTTP, field, namespace string, secrets secretLookup) (*ir.HTTPRequestRule, string, error) {
	r := &ir.HTTPRequestRule{Method: h.Method, Path: h.Path, Host: h.Host}
	for _, f := range []struct{ name, expr string }{{"method", h.Method}, {"path", h.Path}, {"host", h.Host}} {
		if _, err := regexp.Compile(f.expr); err != nil {
			return nil, "", fmt.Errorf("%s.%s: invalid regular expression %q: %w", field, f.name, f.expr, err)
		}
	}
	for i, hd := range h.Headers {
		f := fmt.Sprintf("%s.headers[%d]", field, i)
		name, value, hasValue := strings.Cut(strings.TrimSpace(hd), " ")
		name = strings.TrimSuffix(name, ":")
		value = strings.TrimSpace(value)
		if !ir.ValidToken(name) {
			return nil, "", fmt.Errorf("%s: invalid header name in %q", f, hd)
		}
		if !ir.ValidHeaderValue(value) {
			return nil, "", fmt.Errorf("%s: control characters in the value of %q", f, hd)
		}
		if hasValue {
			r.Headers = append(r.Headers, ir.HeaderRequirement{Name: name, Value: value})
		} else {
			r.Headers = append(r.Headers, ir.HeaderRequirement{Name: name, Present: true})
		}
	}
	for i, hm := range h.HeaderMatches {
		f := fmt.Sprintf("%s.headerMatches[%d]", field, i)
		if hm == nil {
			return nil, "", fmt.Errorf("%s: null entry", f)
		}
		mismatch := ir.MismatchAction(hm.Mismatch)
		switch mismatch {
		case "", ir.MismatchLog, ir.MismatchAdd, ir.MismatchDelete, ir.MismatchReplace:
		default:
			return nil, "", fmt.Errorf("%s.mismatch: unknown action %q (LOG, ADD, DELETE, REPLACE)", f, hm.Mismatch)
		}
		if !ir.ValidToken(hm.Name) {
			return nil, "", fmt.Errorf("%s.name: invalid header name %q", f, hm.Name)
		}
		if mismatch != "" && headermatchv1.ForbiddenHeader(hm.Name) {
			return nil, "", fmt.Errorf("%s.name: a mismatch action may not edit %q (Host and the headers that frame the message or the connection are the proxy's)", f, hm.Name)
		}
		value, secret := hm.Value, false
		if hm.Secret != nil {
			ns := hm.Secret.Namespace
			if ns == "" {
				ns = namespace
			}
			v, err := secretValue(secrets(ns, hm.Secret.Name))
			switch {
			case err == nil:
				value, secret = v, true
			case hm.Value == "":
				// Cilium makes such a rule never match, whatever the
				// mismatch action.
				return nil, fmt.Sprintf("%s.secret: Secret %s/%s: %v; the rule can never match and is left out", f, ns, hm.Secret.Name, err), nil
			}
		}
		if !ir.ValidHeaderValue(value) {
			return nil, "", fmt.Errorf("%s.value: control characters", f)
		}
		switch {
		case mismatch != "":
			r.HeaderActions = append(r.HeaderActions, ir.HeaderAction{Name: hm.Name, Value: value, Mismatch: mismatch, Secret: secret})
		case value == "":
			// No value (or a Secret holding an empty one): presence.
			r.Headers = append(r.Headers, ir.HeaderRequirement{Name: hm.Name, Present: true})
		default:
			r.Headers = append(r.Headers, ir.HeaderRequirement{Name: hm.Name, Value: value})
		}
	}
	if r.Method == "" && r.Path == "" && r.Host == "" && len(r.Headers) == 0 && len(r.HeaderActions) == 0 {
		return nil, "", nil // matches every request
	}
	return r, "", nil
}

func secretValue(s *corev1.Secret) (string, error) {
	if s == nil {
		return "", fmt.Errorf("not found")
	}
	if len(s.Data) != 1 {
		return "", fmt.Errorf("holds %d entries, a header match needs exactly one", len(s.Data))
	}
	for _, v := range s.Data {
		return string(v), nil
	}
	return "", nil
}

// kafkaKeys maps API key names to numbers: Cilium's lower-case names, the
// protocol's own names (case-insensitive, e.g. "ListOffsets"), and the
// singular forms Cilium's documentation uses.
var kafkaKeys = func() map[string]int16 {
	m := map[string]int16{
		"produce": 0, "fetch": 1, "offsets": 2, "metadata": 3, "leaderandisr": 4, "stopreplica": 5,
		"updatemetadata": 6, "controlledshutdown": 7, "offsetcommit": 8, "offsetfetch": 9,
		"findcoordinator": 10, "joingroup": 11, "heartbeat": 12, "leavegroup": 13, "syncgroup": 14,
		"describegroups": 15, "listgroups": 16, "saslhandshake": 17, "apiversions": 18,
		"createtopics": 19, "deletetopics": 20, "deleterecords": 21, "initproducerid": 22,
		"offsetforleaderepoch": 23, "addpartitionstotxn": 24, "addoffsetstotxn": 25, "endtxn": 26,
		"writetxnmarkers": 27, "txnoffsetcommit": 28, "describeacls": 29, "createacls": 30,
		"deleteacls": 31, "describeconfigs": 32, "alterconfigs": 33,
		"createtopic": 19, "deletetopic": 20,
	}
	for k := int16(0); k <= int16(kmsg.MaxKey); k++ {
		if n := kmsg.NameForKey(k); n != "" && !strings.HasPrefix(n, "Unknown") {
			if _, taken := m[strings.ToLower(n)]; !taken {
				m[strings.ToLower(n)] = k
			}
		}
	}
	return m
}()

// kafkaRule converts one Cilium Kafka rule; nil means "every request".
func kafkaRule(k ciliumv2.PortRuleKafka, field string) (*ir.KafkaRequestRule, error) {
	r := &ir.KafkaRequestRule{ClientID: k.ClientID, Topic: k.Topic}
	switch {
	case k.Role != "" && k.APIKey != "":
		return nil, fmt.Errorf("%s: role %q and apiKey %q cannot both be set", field, k.Role, k.APIKey)
	case k.Role != "":
		// One definition of the roles, shared with the proxy: Cilium's
		// expansion plus the key each role's default clients need.
		keys, ok := kafkav1.RoleAPIKeys(k.Role)
		if !ok || len(keys) == 0 {
			return nil, fmt.Errorf("%s.role: unknown Kafka role %q (produce, consume)", field, k.Role)
		}
		r.APIKeys = append([]int16(nil), keys...)
	case k.APIKey != "":
		key, ok := kafkaKeys[strings.ToLower(k.APIKey)]
		if !ok {
			return nil, fmt.Errorf("%s.apiKey: unknown Kafka API key %q", field, k.APIKey)
		}
		r.APIKeys = []int16{key}
	}
	if k.APIVersion != "" {
		v, err := strconv.ParseInt(k.APIVersion, 10, 16)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%s.apiVersion: %q is not a non-negative integer below 32768", field, k.APIVersion)
		}
		r.APIVersion, r.HasAPIVersion = int16(v), true
	}
	if k.Topic != "" && !ir.ValidKafkaTopic(k.Topic) {
		return nil, fmt.Errorf("%s.topic: invalid Kafka topic %q (up to 255 characters of a-z, A-Z, 0-9, '.', '_', '-')", field, k.Topic)
	}
	if !ir.ValidHeaderValue(k.ClientID) {
		return nil, fmt.Errorf("%s.clientID: control characters", field)
	}
	if len(r.APIKeys) == 0 && !r.HasAPIVersion && r.ClientID == "" && r.Topic == "" {
		return nil, nil
	}
	return r, nil
}
