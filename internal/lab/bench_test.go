package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// benchPolicy admits the loner to the twins on one port; every update
// names another port, which gives each update a row of its own to wait
// for in both nodes' datapaths.
const benchPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: bench
  namespace: default
spec:
  endpointSelector:
    matchLabels: {app: twin}
  ingress:
  - fromEndpoints: [{matchLabels: {app: loner}}]
    toPorts:
    - ports: [{port: "%d", protocol: TCP}]
`

// BenchmarkPolicyApplyToEnforced measures, on a 2-node lab, the time from
// writing a CiliumNetworkPolicy update to the API server (one server-side
// apply of the changed object) until both nodes' datapaths hold its rows
// (the twins it selects run one on each node): the agents' watch,
// compilation, and datapath sync. Each iteration is one update; it
// reports the median and the 99th percentile (make bench runs 100). The
// kernel maps are polled every millisecond, so that is the resolution.
func BenchmarkPolicyApplyToEnforced(b *testing.B) {
	l := ForTest(b, Options{Nodes: 2})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/identity-twins.yaml"}); err != nil {
		b.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		b.Fatalf("%v\n%v", err, pods)
	}
	p, err := l.Client.CoreV1().Pods("default").Get(ctx, "twin-1", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	twinIP, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil {
		b.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		b.Fatal(err)
	}
	cnps := dyn.Resource(ciliumv2.CiliumNetworkPolicyResource).Namespace("default")

	// twin is the identity the rows are about, as node-1 enforces it
	// (the identity test checks both nodes agree).
	var twin model.Identity
	deadline := time.Now().Add(time.Minute)
	for twin < 256 {
		if time.Now().After(deadline) {
			b.Fatalf("twin-1 has identity %d on node-1 after a minute", twin)
		}
		ids, err := datapath.LookupIdentities(l.Nodes[0].PinDir, []netip.Addr{twinIP})
		if err != nil {
			b.Fatal(err)
		}
		twin = ids[twinIP]
		time.Sleep(10 * time.Millisecond)
	}
	enforced := func(port uint16) (bool, error) {
		for _, n := range l.Nodes {
			pol, err := datapath.ReadPolicy(n.PinDir)
			if errors.Is(err, fs.ErrNotExist) {
				// The agent replaced its published table between the
				// outer map's lookup and the open of the old table by its
				// ID (freed meanwhile): read again at the next poll.
				return false, nil
			}
			if err != nil {
				return false, err
			}
			if !slices.ContainsFunc(pol.Entries, func(e model.PolicyEntry) bool {
				return e.Subject == twin && e.Direction == model.Ingress && e.Proto == model.ProtoTCP && e.Port == port
			}) {
				return false, nil
			}
		}
		return true, nil
	}
	update := func(port uint16) time.Duration {
		objs, err := controlplane.Decode(fmt.Appendf(nil, benchPolicy, port))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := cnps.Apply(ctx, "bench", objs[0], metav1.ApplyOptions{FieldManager: "nodemesh-bench", Force: true}); err != nil {
			b.Fatal(err)
		}
		deadline := start.Add(time.Minute)
		for {
			ok, err := enforced(port)
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				return time.Since(start)
			}
			if time.Now().After(deadline) {
				b.Fatalf("port %d is not enforced on both nodes a minute after the update", port)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The first policy turns enforcement on and allocates what it names;
	// the measured updates change an enforced policy.
	update(20000)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		lat = append(lat, update(uint16(20001+i%40000)))
	}
	b.StopTimer()
	slices.Sort(lat)
	// The nearest-rank percentile: the smallest sample at least a
	// fraction q of the samples do not exceed.
	pct := func(q float64) time.Duration { return lat[max(0, int(math.Ceil(q*float64(len(lat))))-1)] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.Logf("policy apply (API server) -> enforced on both nodes over %d updates: p50 %s, p99 %s, max %s",
		len(lat), pct(0.50), pct(0.99), lat[len(lat)-1])
}
