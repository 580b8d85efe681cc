package dns

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// table is an immutable index of the names the server answers, built from
// one view of the Services and EndpointSlices. Names are lower-case and
// fully qualified (trailing dot).
type table struct {
	domain string // "cluster.local."
	a      map[string][]netip.Addr
	cname  map[string]string
	// exists holds every name with records and every name above one,
	// up to the domain: those answer NOERROR, not NXDOMAIN.
	exists map[string]bool
}

func newTable(domain string, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) *table {
	t := &table{domain: fqdn(domain), a: map[string][]netip.Addr{}, cname: map[string]string{}, exists: map[string]bool{}}
	t.mark(t.domain)
	t.mark("svc." + t.domain)
	t.mark("pod." + t.domain)
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			bySvc[s.Namespace+"/"+name] = append(bySvc[s.Namespace+"/"+name], s)
		}
	}
	for _, svc := range services {
		name := strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + t.domain)
		t.mark(name)
		switch {
		case svc.Spec.Type == corev1.ServiceTypeExternalName:
			t.cname[name] = fqdn(strings.ToLower(svc.Spec.ExternalName))
		case svc.Spec.ClusterIP == corev1.ClusterIPNone:
			for _, s := range bySvc[svc.Namespace+"/"+svc.Name] {
				for _, ep := range s.Endpoints {
					if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
						continue
					}
					for _, a := range ep.Addresses {
						ip, err := netip.ParseAddr(a)
						if err != nil || !ip.Is4() {
							continue
						}
						t.a[name] = appendUnique(t.a[name], ip)
						if ep.Hostname != nil && *ep.Hostname != "" {
							host := strings.ToLower(*ep.Hostname) + "." + name
							t.a[host] = appendUnique(t.a[host], ip)
							t.mark(host)
						}
					}
				}
			}
		default:
			ips := svc.Spec.ClusterIPs
			if len(ips) == 0 && svc.Spec.ClusterIP != "" {
				ips = []string{svc.Spec.ClusterIP}
			}
			for _, s := range ips {
				if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() {
					t.a[name] = appendUnique(t.a[name], ip)
				}
			}
		}
	}
	return t
}

func appendUnique(list []netip.Addr, a netip.Addr) []netip.Addr {
	for _, x := range list {
		if x == a {
			return list
		}
	}
	return append(list, a)
}

// mark records name and its parents inside the domain as existing.
func (t *table) mark(name string) {
	for n := name; strings.HasSuffix(n, t.domain); {
		t.exists[n] = true
		if n == t.domain {
			return
		}
		_, n, _ = strings.Cut(n, ".")
	}
}

// inDomain says whether name is the domain or below it.
func (t *table) inDomain(name string) bool {
	return name == t.domain || strings.HasSuffix(name, "."+t.domain)
}

// podAddr reads <a-b-c-d>.<namespace>.pod.<domain>.
func (t *table) podAddr(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".pod."+t.domain)
	if !ok {
		return netip.Addr{}, false
	}
	label, ns, ok := strings.Cut(rest, ".")
	if !ok || ns == "" || strings.Contains(ns, ".") {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(strings.ReplaceAll(label, "-", "."))
	if err != nil || !ip.Is4() {
		return netip.Addr{}, false
	}
	return ip, true
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}
