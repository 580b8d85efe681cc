package resource

import (
	"strconv"
	"strings"

	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

func decodeKafka(k *kafkav1.KafkaPolicy, p path) (*KafkaPolicy, error) {
	if err := k.Validate(); err != nil {
		// Validate renders the field path itself.
		return nil, fieldErr(p, "%v", err)
	}
	out := &KafkaPolicy{MaxRequestBytes: k.GetMaxRequestBytes()}
	if out.MaxRequestBytes == 0 {
		out.MaxRequestBytes = DefaultKafkaMaxRequest
	}
	for _, d := range k.GetDestinations() {
		dd := &KafkaDestination{Name: d.GetName(), PortStart: uint16(d.GetPort()), PortEnd: uint16(d.GetEndPort())}
		if dd.PortEnd == 0 {
			dd.PortEnd = dd.PortStart
		}
		for _, a := range d.GetAddresses() {
			pf, _ := kafkav1.ParsePrefix(a) // validated above
			dd.Prefixes = append(dd.Prefixes, pf)
		}
		for _, r := range d.GetRules() {
			rr := &KafkaRule{Name: r.GetName(), APIVersion: -1, ClientID: r.GetClientId(), Topic: r.GetTopic()}
			if r.ApiVersion != nil {
				rr.APIVersion = r.GetApiVersion()
			}
			for _, a := range r.GetPrincipals() {
				pf, _ := kafkav1.ParsePrefix(a)
				rr.Principals = append(rr.Principals, pf)
			}
			keys, _ := kafkav1.RoleAPIKeys(r.GetRole())
			for _, k := range r.GetApiKeys() {
				keys = append(keys, int16(k))
			}
			if len(keys) > 0 {
				rr.APIKeys = map[int16]bool{}
				for _, k := range keys {
					rr.APIKeys[k] = true
				}
			}
			dd.Rules = append(dd.Rules, rr)
		}
		out.Destinations = append(out.Destinations, dd)
	}
	return out, nil
}

// String renders a Kafka rule for logs.
func (r *KafkaRule) String() string {
	var b strings.Builder
	b.WriteString(r.Name)
	if r.Topic != "" {
		b.WriteString(" topic=" + r.Topic)
	}
	if r.APIVersion >= 0 {
		b.WriteString(" version=" + strconv.Itoa(int(r.APIVersion)))
	}
	return b.String()
}
