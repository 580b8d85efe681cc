package e2e

import (
	"math/rand/v2"
	"slices"
)

// The statistics of BenchmarkPolicyHop: quantiles, and a confidence
// interval for the difference of two paths' quantiles from paired samples.
//
// Why a paired moving-block bootstrap: on a small virtual machine the
// tails of both paths come mostly from the machine (a vCPU descheduled for
// a millisecond delays whichever request is in flight), so each path's p99
// moves by hundreds of microseconds between runs while the hop costs tens.
// The generator sends the two paths' requests in adjacent slots (a pair),
// so a stall tends to hit both members of a pair alike. Resampling whole
// pairs keeps that shared noise in both resampled paths, so it cancels in
// the difference instead of widening its interval; resampling runs of
// consecutive pairs (blocks) rather than single pairs keeps the noise's
// correlation in time (a stall lasts longer than one slot), which single
// pairs would break up and so understate the interval. The interval is the
// bootstrap distribution's 2.5th to 97.5th percentile.

// quantile is the p-quantile of sorted: the element at rank ⌊p·n⌋ (the
// maximum for p = 1), 0 for no samples.
func quantile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(p*float64(len(sorted))), len(sorted)-1)]
}

// sortedCopy returns v sorted, leaving v in its order.
func sortedCopy(v []int64) []int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

// quantileDiff is the estimated difference b − a of one quantile and its
// 95 % confidence interval.
type quantileDiff struct {
	P           float64
	Est, Lo, Hi int64
}

// pairedQuantileDiffs estimates, for each p in ps (ascending), the
// difference quantile(b, p) − quantile(a, p), where a[i] and b[i] were
// measured together (pair i, in time order), with a 95 % moving-block
// bootstrap interval: resamples times, ⌈n/block⌉ runs of block consecutive
// pairs are drawn with replacement (the last run cut to n pairs in all).
// seed fixes the draws, so a result can be recomputed.
func pairedQuantileDiffs(a, b []int64, ps []float64, block, resamples int, seed uint64) []quantileDiff {
	n := min(len(a), len(b))
	out := make([]quantileDiff, len(ps))
	if n == 0 {
		for i, p := range ps {
			out[i].P = p
		}
		return out
	}
	block = max(1, min(block, n))
	ra, sa := ranks(a[:n])
	rb, sb := ranks(b[:n])
	for i, p := range ps {
		out[i] = quantileDiff{P: p, Est: quantile(sb, p) - quantile(sa, p)}
	}
	if resamples < 1 {
		for i := range out {
			out[i].Lo, out[i].Hi = out[i].Est, out[i].Est
		}
		return out
	}

	// A resample's quantiles come from counts per rank: O(n) a resample,
	// with no sorting.
	ca, cb := make([]int32, n), make([]int32, n)
	qa, qb := make([]int64, len(ps)), make([]int64, len(ps))
	diffs := make([][]int64, len(ps))
	for i := range diffs {
		diffs[i] = make([]int64, resamples)
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for r := range resamples {
		clear(ca)
		clear(cb)
		for drawn := 0; drawn < n; {
			start := rng.IntN(n - block + 1)
			for j := start; j < start+block && drawn < n; j++ {
				ca[ra[j]]++
				cb[rb[j]]++
				drawn++
			}
		}
		countQuantiles(ca, sa, ps, qa)
		countQuantiles(cb, sb, ps, qb)
		for i := range ps {
			diffs[i][r] = qb[i] - qa[i]
		}
	}
	for i := range ps {
		slices.Sort(diffs[i])
		out[i].Lo = diffs[i][int(0.025*float64(resamples))]
		out[i].Hi = diffs[i][min(int(0.975*float64(resamples)), resamples-1)]
	}
	return out
}

// ranks returns v sorted and, for each v[i], its position in the sorted
// slice (ties get distinct positions).
func ranks(v []int64) ([]int32, []int64) {
	idx := make([]int32, len(v))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(x, y int32) int {
		switch {
		case v[x] < v[y]:
			return -1
		case v[x] > v[y]:
			return 1
		}
		return 0
	})
	rank := make([]int32, len(v))
	sorted := make([]int64, len(v))
	for pos, i := range idx {
		rank[i] = int32(pos)
		sorted[pos] = v[i]
	}
	return rank, sorted
}

// countQuantiles writes into q the ps-quantiles (ascending ps) of the
// multiset that holds sorted[r] count[r] times, with quantile's rank rule.
func countQuantiles(count []int32, sorted []int64, ps []float64, q []int64) {
	m := 0
	for _, c := range count {
		m += int(c)
	}
	r, below := 0, 0 // below: elements of ranks < r
	for i, p := range ps {
		k := min(int(p*float64(m)), m-1) // wanted element, 0-based
		for below+int(count[r]) <= k {
			below += int(count[r])
			r++
		}
		q[i] = sorted[r]
	}
}
