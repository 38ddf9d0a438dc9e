package main

import (
	"math"
	"math/bits"
	"sort"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear (in the spirit of HDR histograms):
// values below 2*histSub are counted exactly, larger values fall into buckets
// that keep the top histSubBits+1 significant bits, so the width of a bucket
// is at most 1/histSub of its lower bound. A reported percentile is the middle
// of its bucket: the relative error is below 1/(2*histSub) (under 0.8%).
const (
	histSubBits = 6
	histSub     = 1 << histSubBits // 64 sub-buckets per power of two
	histExact   = 2 * histSub      // values below this are exact
	// one row of histSub buckets for every shift 1..64-histSubBits-1
	histBuckets = histExact + (64-histSubBits-1)*histSub
)

// histIndex maps a non-negative value to its bucket.
func histIndex(v uint64) int {
	if v < histExact {
		return int(v)
	}
	e := bits.Len64(v) - (histSubBits + 1) // >= 1
	m := v >> uint(e)                      // in [histSub, 2*histSub)
	return histExact + (e-1)*histSub + int(m-histSub)
}

// histRange is the smallest and largest value that map to bucket i.
func histRange(i int) (lo, hi uint64) {
	if i < histExact {
		return uint64(i), uint64(i)
	}
	e := uint((i-histExact)/histSub + 1)
	m := uint64((i-histExact)%histSub + histSub)
	lo = m << e
	hi = lo + (uint64(1) << e) - 1
	return lo, hi
}

// Hist is a concurrent histogram (lock-free, atomic counters). Values are
// nanoseconds by convention. The zero value is ready to use.
type Hist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	min    atomic.Uint64 // stored as value+1 so that 0 means "none"
	max    atomic.Uint64
}

// Record adds one value; negative values (clock steps) count as 0.
func (h *Hist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	h.counts[histIndex(u)].Add(1)
	h.n.Add(1)
	h.sum.Add(u)
	for {
		cur := h.min.Load()
		if cur != 0 && cur-1 <= u {
			break
		}
		if h.min.CompareAndSwap(cur, u+1) {
			break
		}
	}
	for {
		cur := h.max.Load()
		if cur >= u {
			break
		}
		if h.max.CompareAndSwap(cur, u) {
			break
		}
	}
}

// Snapshot copies the histogram; with reset it also clears it (values
// recorded concurrently with a reset land in one of the two halves).
func (h *Hist) Snapshot(reset bool) HistData {
	d := HistData{Counts: map[int]uint64{}}
	load := func(a *atomic.Uint64) uint64 {
		if reset {
			return a.Swap(0)
		}
		return a.Load()
	}
	for i := range h.counts {
		if c := load(&h.counts[i]); c != 0 {
			d.Counts[i] = c
		}
	}
	d.N = load(&h.n)
	d.Sum = load(&h.sum)
	if m := load(&h.min); m != 0 {
		d.Min = m - 1
	}
	d.Max = load(&h.max)
	return d
}

// HistData is a plain (serialisable, mergeable) copy of a histogram.
type HistData struct {
	Counts map[int]uint64 `json:"c"` // bucket index -> count, zero buckets left out
	N      uint64         `json:"n"`
	Sum    uint64         `json:"s"`
	Min    uint64         `json:"lo"`
	Max    uint64         `json:"hi"`
}

// Merge adds o into d.
func (d *HistData) Merge(o HistData) {
	if o.N == 0 {
		return
	}
	if d.Counts == nil {
		d.Counts = map[int]uint64{}
	}
	for i, c := range o.Counts {
		d.Counts[i] += c
	}
	if d.N == 0 || o.Min < d.Min {
		d.Min = o.Min
	}
	if o.Max > d.Max {
		d.Max = o.Max
	}
	d.N += o.N
	d.Sum += o.Sum
}

// Quantile returns the value at quantile q (0..1): the middle of the bucket
// holding the ceil(q*N)-th smallest value, clamped to the observed min/max.
// It returns 0 for an empty histogram.
func (d HistData) Quantile(q float64) uint64 {
	if d.N == 0 {
		return 0
	}
	if q <= 0 {
		return d.Min
	}
	if q >= 1 {
		return d.Max
	}
	rank := uint64(math.Ceil(q * float64(d.N)))
	if rank < 1 {
		rank = 1
	}
	idx := make([]int, 0, len(d.Counts))
	for i := range d.Counts {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var cum uint64
	for _, i := range idx {
		cum += d.Counts[i]
		if cum >= rank {
			lo, hi := histRange(i)
			v := lo + (hi-lo)/2
			return min(max(v, d.Min), d.Max)
		}
	}
	return d.Max
}

// Mean is the exact arithmetic mean (0 when empty).
func (d HistData) Mean() float64 {
	if d.N == 0 {
		return 0
	}
	return float64(d.Sum) / float64(d.N)
}

// QuantileDur is Quantile as a time.Duration (values are nanoseconds).
func (d HistData) QuantileDur(q float64) time.Duration { return time.Duration(d.Quantile(q)) }
