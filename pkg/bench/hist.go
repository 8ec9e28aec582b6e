package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms record microseconds from 1µs to 1h with 3 significant digits.
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histDigits  = 3
)

// hist is a latency histogram (HdrHistogram). Not safe for concurrent use.
type hist struct {
	h        *hdrhistogram.Histogram
	negative int64 // values below zero (clock skew between hosts), recorded as 0
	max      time.Duration
}

func newHist() *hist {
	return &hist{h: hdrhistogram.New(histLowest, histHighest, histDigits)}
}

// record adds one duration; values beyond the range are clamped to it.
func (h *hist) record(d time.Duration) {
	h.max = max(h.max, d)
	us := d.Microseconds()
	if us < 0 {
		h.negative++
		us = 0
	}
	us = min(max(us, histLowest), histHighest)
	h.h.RecordValue(us)
}

func (h *hist) count() int64 { return h.h.TotalCount() }

// ms returns the value at quantile q (0..100) in milliseconds.
func (h *hist) ms(q float64) float64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	// HdrHistogram answers the highest value equivalent to the bucket;
	// never report more than the exact maximum.
	return float64(min(h.h.ValueAtQuantile(q), h.max.Microseconds())) / 1000
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Lateness is a timer lateness summary in milliseconds.
type Lateness struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func (h *hist) latency() Latency {
	return Latency{Count: h.count(), P50: h.ms(50), P99: h.ms(99), P999: h.ms(99.9), Max: h.maxMS()}
}

func (h *hist) lateness() Lateness {
	return Lateness{Count: h.count(), P50: h.ms(50), P99: h.ms(99), Max: h.maxMS()}
}

func (h *hist) maxMS() float64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return float64(h.max.Microseconds()) / 1000
}

// syncHist is a hist safe for concurrent use.
type syncHist struct {
	mu sync.Mutex
	h  *hist
}

func newSyncHist() *syncHist { return &syncHist{h: newHist()} }

func (s *syncHist) record(d time.Duration) {
	s.mu.Lock()
	s.h.record(d)
	s.mu.Unlock()
}

func (s *syncHist) latency() Latency {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h.latency()
}
