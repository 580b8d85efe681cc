package upstream

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// detector is a cluster's outlier detection (Envoy's passive health
// checking): it watches the outcomes its endpoints' pools report and
// ejects an endpoint from load balancing for a while when it fails
// consecutively, or when its success rate falls far below its peers'.
// It lives as long as its cluster's name (across versions), as the
// circuit breakers do, so an ejection survives an EDS update.
//
// Outcomes: a response's status is an external event (5xx a failure);
// a connection attempt is a local-origin event (a failure to connect,
// time out connecting or complete a TLS handshake; an established
// connection a success). With split_external_local_origin_errors the two
// are counted apart; without, a local-origin failure counts as a 5xx and
// a local-origin success is not counted. A reset or timeout after the
// connection is established is not a local-origin event here.
//
// Time is evaluated lazily: the interval's work (un-ejecting endpoints
// whose time is up, the success rate pass) runs with the first outcome
// reported after the interval ended, so an idle cluster costs nothing.
type detector struct {
	mu    sync.Mutex
	cfg   resource.OutlierDetection
	hosts map[*Pool]*hostState
	next  time.Time // end of the current interval
	rnd   *rand.Rand
	now   func() time.Time
}

type hostState struct {
	consec5xx, consecLocal uint32
	ejectedUntil           time.Time
	ejections              uint32 // ejection time multiplier
	// Counts of the current interval, for the success rate.
	extOK, extFail, locOK, locFail uint32
}

func newDetector() *detector {
	return &detector{hosts: map[*Pool]*hostState{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), now: time.Now}
}

// configure takes a (new version of the) cluster's settings and
// endpoints; endpoints that left are forgotten (and un-ejected).
func (d *detector) configure(cfg resource.OutlierDetection, pools []*Pool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.Interval != cfg.Interval {
		d.next = time.Time{} // the next outcome starts an interval
	}
	d.cfg = cfg
	keep := make(map[*Pool]*hostState, len(pools))
	for _, p := range pools {
		h := d.hosts[p]
		if h == nil {
			h = &hostState{}
		}
		keep[p] = h
		p.od.Store(d)
	}
	for p := range d.hosts {
		if keep[p] == nil {
			p.ejected.Store(false)
		}
	}
	d.hosts = keep
}

// outcome kinds
const (
	outcomeExtOK = iota
	outcomeExtFail
	outcomeLocalOK
	outcomeLocalFail
)

func (d *detector) report(p *Pool, kind int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.tick(now)
	h := d.hosts[p]
	if h == nil {
		return // the endpoint left the cluster meanwhile
	}
	if !d.cfg.Split {
		switch kind {
		case outcomeLocalOK:
			return
		case outcomeLocalFail:
			kind = outcomeExtFail
		}
	}
	switch kind {
	case outcomeExtOK:
		h.extOK++
		h.consec5xx = 0
	case outcomeExtFail:
		h.extFail++
		h.consec5xx++
		if h.consec5xx >= d.cfg.Consecutive5xx && d.cfg.Consecutive5xx > 0 {
			h.consec5xx = 0
			d.maybeEject(p, h, d.cfg.EnforcingConsecutive5xx, now)
		}
	case outcomeLocalOK:
		h.locOK++
		h.consecLocal = 0
	case outcomeLocalFail:
		h.locFail++
		h.consecLocal++
		if h.consecLocal >= d.cfg.ConsecutiveLocalOriginFailure && d.cfg.ConsecutiveLocalOriginFailure > 0 {
			h.consecLocal = 0
			d.maybeEject(p, h, d.cfg.EnforcingConsecutiveLocalOriginFailure, now)
		}
	}
}

// maybeEject ejects p with probability enforcing percent, unless it is
// ejected already or max_ejection_percent of the cluster is (one
// endpoint may always be ejected, as in Envoy).
func (d *detector) maybeEject(p *Pool, h *hostState, enforcing uint32, now time.Time) {
	if p.ejected.Load() || uint32(d.rnd.IntN(100)) >= enforcing {
		return
	}
	n := 0
	for q := range d.hosts {
		if q.ejected.Load() {
			n++
		}
	}
	if n > 0 && uint64(100)*uint64(n+1) > uint64(d.cfg.MaxEjectionPercent)*uint64(len(d.hosts)) {
		return
	}
	h.ejections++
	t := time.Duration(min(int64(d.cfg.BaseEjectionTime)*int64(h.ejections), int64(d.cfg.MaxEjectionTime)))
	h.ejectedUntil = now.Add(t)
	p.ejected.Store(true)
}

// tick runs the work of every interval that ended by now.
func (d *detector) tick(now time.Time) {
	if d.next.IsZero() {
		d.next = now.Add(d.cfg.Interval)
		return
	}
	if now.Before(d.next) {
		return
	}
	for p, h := range d.hosts {
		if p.ejected.Load() {
			if !now.Before(h.ejectedUntil) {
				p.ejected.Store(false)
				h.consec5xx, h.consecLocal = 0, 0
			}
		} else if h.ejections > 0 {
			h.ejections--
		}
	}
	d.successRate(now, func(h *hostState) (uint32, uint32) { return h.extOK, h.extFail }, d.cfg.EnforcingSuccessRate)
	if d.cfg.Split {
		d.successRate(now, func(h *hostState) (uint32, uint32) { return h.locOK, h.locFail }, d.cfg.EnforcingLocalOriginSuccessRate)
	}
	for _, h := range d.hosts {
		h.extOK, h.extFail, h.locOK, h.locFail = 0, 0, 0, 0
	}
	// Intervals that passed without any outcome have nothing to judge.
	d.next = now.Add(d.cfg.Interval)
}

// successRate ejects the endpoints whose success rate in the interval is
// below mean - stdev_factor/1000 * stdev of the endpoints with enough
// requests, when at least success_rate_minimum_hosts have enough.
func (d *detector) successRate(now time.Time, counts func(*hostState) (ok, fail uint32), enforcing uint32) {
	if enforcing == 0 {
		return
	}
	type sample struct {
		p    *Pool
		h    *hostState
		rate float64
	}
	var ss []sample
	for p, h := range d.hosts {
		ok, fail := counts(h)
		if p.ejected.Load() || ok+fail == 0 || ok+fail < d.cfg.SuccessRateRequestVolume {
			continue
		}
		ss = append(ss, sample{p, h, 100 * float64(ok) / float64(ok+fail)})
	}
	if len(ss) == 0 || uint32(len(ss)) < d.cfg.SuccessRateMinimumHosts {
		return
	}
	var mean, sq float64
	for _, s := range ss {
		mean += s.rate
	}
	mean /= float64(len(ss))
	for _, s := range ss {
		sq += (s.rate - mean) * (s.rate - mean)
	}
	limit := mean - float64(d.cfg.SuccessRateStdevFactor)/1000*math.Sqrt(sq/float64(len(ss)))
	for _, s := range ss {
		if s.rate < limit {
			d.maybeEject(s.p, s.h, enforcing, now)
		}
	}
}

// ReportStatus tells the pool's cluster's outlier detection, if any, the
// status of a response from this endpoint.
func (p *Pool) ReportStatus(code int) {
	if p.parent != nil {
		p = p.parent
	}
	if d := p.od.Load(); d != nil {
		if code >= 500 {
			d.report(p, outcomeExtFail)
		} else {
			d.report(p, outcomeExtOK)
		}
	}
}

// reportConnect tells outlier detection how a connection attempt ended.
func (p *Pool) reportConnect(ok bool) {
	if p.parent != nil {
		p = p.parent
	}
	if d := p.od.Load(); d != nil {
		if ok {
			d.report(p, outcomeLocalOK)
		} else {
			d.report(p, outcomeLocalFail)
		}
	}
}

// Ejected reports whether outlier detection keeps this endpoint out of
// load balancing.
func (p *Pool) Ejected() bool {
	if p.parent != nil {
		p = p.parent
	}
	return p.ejected.Load()
}

// odState is the outlier detection a pool reports to and its ejection.
type odState struct {
	od      atomic.Pointer[detector]
	ejected atomic.Bool
}
