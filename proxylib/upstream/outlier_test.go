package upstream

import (
	"context"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// outlierCluster builds a cluster of a live endpoint (a listener on
// loopback) and a dead one (a port nothing listens on any more) with the
// given outlier detection, on a clock the test moves.
func outlierCluster(t *testing.T, od resource.OutlierDetection) (c *Cluster, live, dead string, clock *time.Time) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead = gone.Addr().String()
	gone.Close()
	live = ln.Addr().String()
	m := NewManager(nil)
	t.Cleanup(m.Close)
	cfg := &resource.Cluster{Name: "c", LB: resource.RoundRobin, ConnectTimeout: 2 * time.Second, Outlier: &od, Limits: resource.DefaultThresholds}
	c = m.Build(cfg, &resource.Endpoints{ClusterName: "c", Endpoints: []resource.Endpoint{
		{Address: live, Weight: 1}, {Address: dead, Weight: 1}}})
	now := time.Unix(1000, 0)
	clock = &now
	m.detectors["c"].now = func() time.Time { return *clock }
	return c, live, dead, clock
}

func pickCounts(c *Cluster, n int) map[string]int {
	rnd := rand.New(rand.NewPCG(3, 4))
	out := map[string]int{}
	for range n {
		out[c.Pick(rnd).Addr]++
	}
	return out
}

func hostOf(c *Cluster, addr string) *Host {
	for _, h := range c.Hosts {
		if h.Addr == addr {
			return h
		}
	}
	return nil
}

// The seeds' CiliumEnvoyConfig clusters: split_external_local_origin_errors
// and consecutive_local_origin_failure 2. Two refused connections eject
// the dead endpoint for base_ejection_time; then it is back.
func TestOutlierConsecutiveLocalOriginFailure(t *testing.T) {
	od := resource.OutlierDetection{Split: true, ConsecutiveLocalOriginFailure: 2, EnforcingConsecutiveLocalOriginFailure: 100,
		Consecutive5xx: 5, EnforcingConsecutive5xx: 100, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
		MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10, SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100,
		SuccessRateStdevFactor: 1900, EnforcingSuccessRate: 100, EnforcingLocalOriginSuccessRate: 100}
	c, live, dead, clock := outlierCluster(t, od)
	d := hostOf(c, dead).Pool
	ctx := context.Background()
	if _, err := d.dial(ctx); err == nil {
		t.Fatal("dialling the dead endpoint succeeded")
	}
	if d.Ejected() {
		t.Fatal("ejected after one failure")
	}
	if got := pickCounts(c, 100); got[dead] != 50 {
		t.Fatalf("before ejection: %v, want an even split", got)
	}
	if _, err := d.dial(ctx); err == nil {
		t.Fatal("dialling the dead endpoint succeeded")
	}
	if !d.Ejected() {
		t.Fatal("not ejected after two consecutive local-origin failures")
	}
	if got := pickCounts(c, 100); got[dead] != 0 || got[live] != 100 {
		t.Fatalf("while ejected: %v, want every pick on %s", got, live)
	}
	// Un-ejection happens at the first interval boundary after the
	// ejection time, with the next reported outcome.
	*clock = clock.Add(29 * time.Second)
	hostOf(c, live).Pool.ReportStatus(200)
	if !d.Ejected() {
		t.Fatal("un-ejected before base_ejection_time")
	}
	*clock = clock.Add(11 * time.Second)
	hostOf(c, live).Pool.ReportStatus(200)
	if d.Ejected() {
		t.Fatal("still ejected after base_ejection_time")
	}
	// A success resets the count: fail, succeed, fail does not eject.
	lv := hostOf(c, live).Pool
	_, _ = d.dial(ctx)
	d.reportConnect(true)
	_, _ = d.dial(ctx)
	if d.Ejected() {
		t.Fatal("ejected although a success came between the failures")
	}
	// The live endpoint's successful connections never eject it.
	for range 5 {
		nc, err := lv.dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
	}
	if lv.Ejected() {
		t.Fatal("live endpoint ejected")
	}
}

// Without split, a connection failure counts as a 5xx: consecutive_5xx
// (here 3) ejects, and 5xx responses count the same way; the second
// ejection lasts twice the base time.
func TestOutlierConsecutive5xx(t *testing.T) {
	od := resource.OutlierDetection{Consecutive5xx: 3, EnforcingConsecutive5xx: 100, ConsecutiveLocalOriginFailure: 5,
		EnforcingConsecutiveLocalOriginFailure: 100, Interval: time.Second, BaseEjectionTime: 10 * time.Second,
		MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10}
	c, _, dead, clock := outlierCluster(t, od)
	d := hostOf(c, dead).Pool
	d.ReportStatus(503)
	_, _ = d.dial(context.Background())
	if d.Ejected() {
		t.Fatal("ejected after two failures")
	}
	d.ReportStatus(500)
	if !d.Ejected() {
		t.Fatal("not ejected after three consecutive failures")
	}
	*clock = clock.Add(11 * time.Second)
	d.ReportStatus(200) // reported by a request still in flight
	if d.Ejected() {
		t.Fatal("still ejected after base_ejection_time")
	}
	for range 3 {
		d.ReportStatus(502)
	}
	if !d.Ejected() {
		t.Fatal("not ejected again")
	}
	*clock = clock.Add(11 * time.Second)
	d.ReportStatus(200)
	if !d.Ejected() {
		t.Fatal("second ejection ended after one base_ejection_time")
	}
	*clock = clock.Add(10 * time.Second)
	d.ReportStatus(200)
	if d.Ejected() {
		t.Fatal("second ejection outlasted twice base_ejection_time")
	}
}

// max_ejection_percent: one endpoint may always be ejected, a second only
// within the percentage.
func TestOutlierMaxEjectionPercent(t *testing.T) {
	od := resource.OutlierDetection{Consecutive5xx: 1, EnforcingConsecutive5xx: 100, Interval: time.Second,
		BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10}
	c, live, dead, _ := outlierCluster(t, od)
	hostOf(c, dead).Pool.ReportStatus(503)
	hostOf(c, live).Pool.ReportStatus(503)
	if !hostOf(c, dead).Pool.Ejected() || hostOf(c, live).Pool.Ejected() {
		t.Fatal("want the first failing endpoint ejected and the second kept (10% of 2 endpoints)")
	}
}
