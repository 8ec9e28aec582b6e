package bench

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// Stages is the p99, in milliseconds, of the engine's own histograms over a
// phase: the stages a timer's lateness and a trigger's latency are made of.
// A timer fires in a step once every input topic is applied past its
// deadline (so the records' end-to-end delay bounds its lateness from
// below) or was seen caught up after it (an end probe). The figures come
// from the histograms' buckets between two scrapes, interpolated within a
// bucket as Prometheus's histogram_quantile does, so they are only as fine
// as the buckets (a factor of two for steps, commits and probes; 1, 2.5,
// 5, 10, 25, 50, 100 ms for the record delays; 1, 5, 10, 25, 50, 100 ms
// for timer lateness; a factor of 1.5 for the input wait and merge hold).
type Stages struct {
	// TimerLateness is the engine's own measure of what the bench takes
	// from emitted_at: a timer's deadline to the step that fired it.
	TimerLateness float64 `json:"timer_lateness"`
	// RecordE2E is an input record's timestamp to the step that applied
	// it; FetchDelay the part of it before a poll returned the record.
	RecordE2E  float64 `json:"record_e2e"`
	FetchDelay float64 `json:"fetch_delay"`
	// InputWait is the part after the poll: a record's wait in its
	// worker for a step; MergeHold one hold of a worker's input for the
	// other input topic, a part of that wait.
	InputWait float64 `json:"input_wait"`
	MergeHold float64 `json:"merge_hold"`
	// MergeHoldRecords and MergeHoldEnd are the holds by what they waited
	// for: the other topic's records, known to be unread (its end past
	// what was fetched), or its end, not seen since the head record was
	// fetched; MergeHolds counts each kind's holds per second.
	MergeHoldRecords float64    `json:"merge_hold_records"`
	MergeHoldEnd     float64    `json:"merge_hold_end"`
	MergeHolds       [2]float64 `json:"merge_holds_per_sec"`
	// Step is one worker step: apply what is buffered, fire what is due,
	// commit; Commit the synced Pebble commit within it.
	Step   float64 `json:"step"`
	Commit float64 `json:"pebble_commit"`
	// EndProbe is the round trip of one read of the input topics' ends.
	EndProbe float64 `json:"end_probe"`
}

// Histogram series read from the child for Stages.
const (
	hTimerLateness = "spur_timer_lateness_seconds_bucket"
	hRecordE2E     = "spur_record_e2e_latency_seconds_bucket"
	hFetchDelay    = "spur_fetch_delay_seconds_bucket"
	hInputWait     = "spur_input_wait_seconds_bucket"
	hHoldRecords   = `spur_merge_hold_seconds_bucket{wait_for="records"}`
	hHoldEnd       = `spur_merge_hold_seconds_bucket{wait_for="end"}`
	hStep          = "spur_step_duration_seconds_bucket"
	hCommit        = `spur_pebble_commit_seconds_bucket{phase="total"}`
	hEndProbe      = "spur_end_probe_seconds_bucket"
)

func stages(a, b sample) Stages {
	p99 := func(series ...string) float64 { return histQuantile(a.m, b.m, 0.99, series...) * 1000 }
	perSec := func(series string) float64 {
		d := b.at.Sub(a.at).Seconds()
		if d <= 0 {
			return 0
		}
		return (b.m[bucketKey(series, "+Inf")] - a.m[bucketKey(series, "+Inf")]) / d
	}
	return Stages{
		TimerLateness:    p99(hTimerLateness),
		RecordE2E:        p99(hRecordE2E),
		FetchDelay:       p99(hFetchDelay),
		InputWait:        p99(hInputWait),
		MergeHold:        p99(hHoldRecords, hHoldEnd),
		MergeHoldRecords: p99(hHoldRecords),
		MergeHoldEnd:     p99(hHoldEnd),
		MergeHolds:       [2]float64{perSec(hHoldRecords), perSec(hHoldEnd)},
		Step:             p99(hStep),
		Commit:           p99(hCommit),
		EndProbe:         p99(hEndProbe),
	}
}

// histQuantile is the q-quantile of what histogram series (their buckets
// summed by bound) counted between two scrapes, from the cumulative
// buckets: linear within the bucket it falls in, the lower bound of a
// bucket without one below it taken as 0, and the highest finite bound
// when it falls in +Inf. It is 0 when nothing was counted.
func histQuantile(a, b metrics, q float64, series ...string) float64 {
	prefixes := make([]string, len(series))
	for i, sr := range series {
		prefixes[i] = bucketKey(sr, "")
	}
	counts := map[float64]float64{} // by bound, summed over the series
	for k, v := range b {
		for _, prefix := range prefixes {
			if s, ok := strings.CutPrefix(k, prefix); ok {
				if le, err := strconv.ParseFloat(s, 64); err == nil {
					counts[le] += v - a[k]
				}
			}
		}
	}
	type bucket struct{ le, n float64 }
	bs := make([]bucket, 0, len(counts))
	for le, n := range counts {
		bs = append(bs, bucket{le, n})
	}
	if len(bs) == 0 {
		return 0
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	total := bs[len(bs)-1].n
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, bk := range bs {
		if bk.n >= rank {
			if math.IsInf(bk.le, 1) {
				return lower
			}
			if bk.n == below {
				return bk.le
			}
			return lower + (bk.le-lower)*(rank-below)/(bk.n-below)
		}
		lower, below = bk.le, bk.n
	}
	return lower
}
