package observer

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
)

// Bounds on what one request may ask for: filters come from any client
// that reaches the socket.
const (
	maxFilters     = 64   // per whitelist or blacklist
	maxValues      = 256  // per field of one filter
	maxPatternSize = 1024 // bytes of one path regular expression
)

// errUnsupported marks a filter field this observer cannot evaluate; the
// request is refused rather than answered as if the field were absent.
var errUnsupported = errors.New("not supported by this observer")

type match func(*flowpb.Flow) bool

// compileList compiles a whitelist or blacklist: a flow matches the list
// when it matches any of its filters.
func compileList(filters []*flowpb.FlowFilter) (match, error) {
	if len(filters) > maxFilters {
		return nil, fmt.Errorf("%d filters, at most %d", len(filters), maxFilters)
	}
	var ms []match
	for i, f := range filters {
		m, err := compile(f)
		if err != nil {
			return nil, fmt.Errorf("filter %d: %w", i, err)
		}
		ms = append(ms, m)
	}
	return func(fl *flowpb.Flow) bool {
		return slices.ContainsFunc(ms, func(m match) bool { return m(fl) })
	}, nil
}

// compile compiles one filter: a flow matches when it matches every field
// that is set, and a field when it matches any of its values (Hubble's
// semantics).
func compile(f *flowpb.FlowFilter) (match, error) {
	if err := unsupported(f); err != nil {
		return nil, err
	}
	var ms []match
	add := func(name string, n int, m match, err error) error {
		switch {
		case n == 0:
			return nil
		case n > maxValues:
			return fmt.Errorf("%s: %d values, at most %d", name, n, maxValues)
		case err != nil:
			return fmt.Errorf("%s: %w", name, err)
		}
		ms = append(ms, m)
		return nil
	}
	src := func(fl *flowpb.Flow) *flowpb.Endpoint { return fl.GetSource() }
	dst := func(fl *flowpb.Flow) *flowpb.Endpoint { return fl.GetDestination() }
	srcIP := func(fl *flowpb.Flow) string { return fl.GetIP().GetSource() }
	dstIP := func(fl *flowpb.Flow) string { return fl.GetIP().GetDestination() }
	for _, err := range []error{
		func() error { m, err := ips(f.SourceIp, srcIP); return add("source_ip", len(f.SourceIp), m, err) }(),
		func() error {
			m, err := ips(f.DestinationIp, dstIP)
			return add("destination_ip", len(f.DestinationIp), m, err)
		}(),
		func() error { m, err := pods(f.SourcePod, src); return add("source_pod", len(f.SourcePod), m, err) }(),
		func() error {
			m, err := pods(f.DestinationPod, dst)
			return add("destination_pod", len(f.DestinationPod), m, err)
		}(),
		func() error {
			m, err := labelSelectors(f.SourceLabel, src)
			return add("source_label", len(f.SourceLabel), m, err)
		}(),
		func() error {
			m, err := labelSelectors(f.DestinationLabel, dst)
			return add("destination_label", len(f.DestinationLabel), m, err)
		}(),
		add("source_identity", len(f.SourceIdentity), identities(f.SourceIdentity, src), nil),
		add("destination_identity", len(f.DestinationIdentity), identities(f.DestinationIdentity, dst), nil),
		func() error {
			m, err := ports(f.SourcePort, true)
			return add("source_port", len(f.SourcePort), m, err)
		}(),
		func() error {
			m, err := ports(f.DestinationPort, false)
			return add("destination_port", len(f.DestinationPort), m, err)
		}(),
		add("verdict", len(f.Verdict), func(fl *flowpb.Flow) bool { return slices.Contains(f.Verdict, fl.GetVerdict()) }, nil),
		add("drop_reason_desc", len(f.DropReasonDesc), func(fl *flowpb.Flow) bool { return slices.Contains(f.DropReasonDesc, fl.GetDropReasonDesc()) }, nil),
		add("traffic_direction", len(f.TrafficDirection), func(fl *flowpb.Flow) bool { return slices.Contains(f.TrafficDirection, fl.GetTrafficDirection()) }, nil),
		add("ip_version", len(f.IpVersion), func(fl *flowpb.Flow) bool { return slices.Contains(f.IpVersion, fl.GetIP().GetIpVersion()) }, nil),
		add("event_type", len(f.EventType), eventTypes(f.EventType), nil),
		func() error { m, err := protocols(f.Protocol); return add("protocol", len(f.Protocol), m, err) }(),
		func() error {
			m, err := httpStatus(f.HttpStatusCode)
			return add("http_status_code", len(f.HttpStatusCode), m, err)
		}(),
		add("http_method", len(f.HttpMethod), httpMethods(f.HttpMethod), nil),
		func() error { m, err := httpPaths(f.HttpPath); return add("http_path", len(f.HttpPath), m, err) }(),
		func() error { m, err := nodeNames(f.NodeName); return add("node_name", len(f.NodeName), m, err) }(),
		add("reply", len(f.Reply), func(fl *flowpb.Flow) bool { return slices.Contains(f.Reply, fl.GetIsReply().GetValue()) }, nil),
	} {
		if err != nil {
			return nil, err
		}
	}
	return func(fl *flowpb.Flow) bool {
		for _, m := range ms {
			if !m(fl) {
				return false
			}
		}
		return true
	}, nil
}

// unsupported names the first field set in f that this observer cannot
// evaluate (it has no services, DNS or workloads kinds).
func unsupported(f *flowpb.FlowFilter) error {
	for name, n := range map[string]int{
		"uuid": len(f.Uuid), "source_ip_xlated": len(f.SourceIpXlated), "source_fqdn": len(f.SourceFqdn),
		"destination_fqdn": len(f.DestinationFqdn),
		"source_service":   len(f.SourceService), "destination_service": len(f.DestinationService),
		"source_workload": len(f.SourceWorkload), "destination_workload": len(f.DestinationWorkload),
		"source_cluster_name": len(f.SourceClusterName), "destination_cluster_name": len(f.DestinationClusterName),
		"interface": len(f.Interface), "dns_query": len(f.DnsQuery), "http_url": len(f.HttpUrl), "http_header": len(f.HttpHeader),
		"tcp_flags": len(f.TcpFlags), "node_labels": len(f.NodeLabels), "trace_id": len(f.TraceId), "ip_trace_id": len(f.IpTraceId),
		"encrypted": len(f.Encrypted),
	} {
		if n > 0 {
			return fmt.Errorf("%s: %w", name, errUnsupported)
		}
	}
	if f.Experimental != nil && len(f.Experimental.CelExpression) > 0 {
		return fmt.Errorf("experimental.cel_expression: %w", errUnsupported)
	}
	return nil
}

// ips matches addresses or prefixes ("10.0.0.1", "10.0.0.0/24").
func ips(vals []string, get func(*flowpb.Flow) string) (match, error) {
	var prefixes []netip.Prefix
	for _, v := range vals {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither an address nor a prefix", v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		prefixes = append(prefixes, p.Masked())
	}
	return func(fl *flowpb.Flow) bool {
		a, err := netip.ParseAddr(get(fl))
		return err == nil && slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
	}, nil
}

// pods matches "namespace/pod-name-prefix"; "namespace/" matches the whole
// namespace, a value without a slash is a prefix in "default" (Hubble's
// reading).
func pods(vals []string, get func(*flowpb.Flow) *flowpb.Endpoint) (match, error) {
	type podFilter struct{ ns, prefix string }
	var fs []podFilter
	for _, v := range vals {
		if v == "" {
			return nil, errors.New("empty pod name")
		}
		ns, prefix, ok := strings.Cut(v, "/")
		if !ok {
			ns, prefix = "default", v
		}
		fs = append(fs, podFilter{ns, prefix})
	}
	return func(fl *flowpb.Flow) bool {
		ep := get(fl)
		if ep.GetPodName() == "" && ep.GetNamespace() == "" {
			return false
		}
		return slices.ContainsFunc(fs, func(f podFilter) bool {
			return (f.ns == "" || f.ns == ep.GetNamespace()) && strings.HasPrefix(ep.GetPodName(), f.prefix)
		})
	}, nil
}

func identities(ids []uint32, get func(*flowpb.Flow) *flowpb.Endpoint) match {
	return func(fl *flowpb.Flow) bool { return slices.Contains(ids, get(fl).GetIdentity()) }
}

func ports(vals []string, source bool) (match, error) {
	var ps []uint32
	for _, v := range vals {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%q is not a port", v)
		}
		ps = append(ps, uint32(p))
	}
	return func(fl *flowpb.Flow) bool {
		var sp, dp uint32
		switch l4 := fl.GetL4(); {
		case l4.GetTCP() != nil:
			sp, dp = l4.GetTCP().GetSourcePort(), l4.GetTCP().GetDestinationPort()
		case l4.GetUDP() != nil:
			sp, dp = l4.GetUDP().GetSourcePort(), l4.GetUDP().GetDestinationPort()
		case l4.GetSCTP() != nil:
			sp, dp = l4.GetSCTP().GetSourcePort(), l4.GetSCTP().GetDestinationPort()
		default:
			return false
		}
		if source {
			return slices.Contains(ps, sp)
		}
		return slices.Contains(ps, dp)
	}, nil
}

func eventTypes(ts []*flowpb.EventTypeFilter) match {
	return func(fl *flowpb.Flow) bool {
		et := fl.GetEventType()
		return et != nil && slices.ContainsFunc(ts, func(t *flowpb.EventTypeFilter) bool {
			return t.GetType() == et.GetType() && (!t.GetMatchSubType() || t.GetSubType() == et.GetSubType())
		})
	}
}

// protocols matches L4 protocols and the L7 ones Hubble knows ("http"),
// plus "kafka", which nodemesh's proxy records.
func protocols(vals []string) (match, error) {
	var ms []match
	for _, v := range vals {
		var m match
		switch strings.ToLower(v) {
		case "tcp":
			m = func(fl *flowpb.Flow) bool { return fl.GetL4().GetTCP() != nil }
		case "udp":
			m = func(fl *flowpb.Flow) bool { return fl.GetL4().GetUDP() != nil }
		case "sctp":
			m = func(fl *flowpb.Flow) bool { return fl.GetL4().GetSCTP() != nil }
		case "icmp":
			m = func(fl *flowpb.Flow) bool { return fl.GetL4().GetICMPv4() != nil || fl.GetL4().GetICMPv6() != nil }
		case "icmpv4":
			m = func(fl *flowpb.Flow) bool { return fl.GetL4().GetICMPv4() != nil }
		case "icmpv6":
			m = func(fl *flowpb.Flow) bool { return fl.GetL4().GetICMPv6() != nil }
		case "http":
			m = func(fl *flowpb.Flow) bool { return fl.GetL7().GetHttp() != nil }
		case "kafka":
			m = func(fl *flowpb.Flow) bool { return fl.GetL7().GetKafka() != nil }
		case "dns", "vrrp", "igmp":
			// Never recorded here: valid, matches nothing.
			m = func(*flowpb.Flow) bool { return false }
		default:
			return nil, fmt.Errorf("unknown protocol %q", v)
		}
		ms = append(ms, m)
	}
	return func(fl *flowpb.Flow) bool { return slices.ContainsFunc(ms, func(m match) bool { return m(fl) }) }, nil
}

var (
	statusFull   = regexp.MustCompile(`^[1-5][0-9]{2}$`)
	statusPrefix = regexp.MustCompile(`^[1-5][0-9]?\+$`)
)

// httpStatus matches codes ("403") and prefixes ("4+", "40+") of HTTP
// records that carry a status.
func httpStatus(vals []string) (match, error) {
	var full, prefix []string
	for _, v := range vals {
		switch {
		case statusFull.MatchString(v):
			full = append(full, v)
		case statusPrefix.MatchString(v):
			prefix = append(prefix, strings.TrimSuffix(v, "+"))
		default:
			return nil, fmt.Errorf("%q is not a status code or prefix", v)
		}
	}
	return func(fl *flowpb.Flow) bool {
		h := fl.GetL7().GetHttp()
		if h == nil || h.Code == 0 {
			return false
		}
		c := fmt.Sprintf("%03d", h.Code)
		return slices.Contains(full, c) || slices.ContainsFunc(prefix, func(p string) bool { return strings.HasPrefix(c, p) })
	}, nil
}

func httpMethods(vals []string) match {
	return func(fl *flowpb.Flow) bool {
		h := fl.GetL7().GetHttp()
		return h != nil && h.Method != "" && slices.ContainsFunc(vals, func(m string) bool { return strings.EqualFold(m, h.Method) })
	}
}

// httpPaths matches the URL's path against regular expressions (Go's
// regexp runs in linear time; the pattern size is bounded).
func httpPaths(vals []string) (match, error) {
	var res []*regexp.Regexp
	for _, v := range vals {
		if len(v) > maxPatternSize {
			return nil, fmt.Errorf("pattern of %d bytes, at most %d", len(v), maxPatternSize)
		}
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", v, err)
		}
		res = append(res, re)
	}
	return func(fl *flowpb.Flow) bool {
		h := fl.GetL7().GetHttp()
		if h == nil || h.Url == "" {
			return false
		}
		u, err := url.ParseRequestURI(h.Url)
		return err == nil && slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(u.Path) })
	}, nil
}

// nodeNames matches node names with shell patterns ("node-*"); Hubble's
// "cluster/node" form is matched on the node part.
func nodeNames(vals []string) (match, error) {
	var pats []string
	for _, v := range vals {
		p := v
		if _, n, ok := strings.Cut(v, "/"); ok {
			p = n
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%q: %w", v, err)
		}
		pats = append(pats, p)
	}
	return func(fl *flowpb.Flow) bool {
		return slices.ContainsFunc(pats, func(p string) bool { ok, _ := path.Match(p, fl.GetNodeName()); return ok })
	}, nil
}
