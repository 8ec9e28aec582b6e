package bench

import (
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/observability"
)

// engineMetrics serves a fresh set of the engine's metrics over HTTP, and
// returns them with a function that scrapes them as the bench scrapes its
// child, the sample stamped at.
func engineMetrics(t *testing.T) (*engine.Metrics, func(at time.Time) sample) {
	reg := observability.NewRegistry()
	m := engine.NewMetrics(reg)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	c := &child{http: strings.TrimPrefix(srv.URL, "http://"), client: scrapeClient()}
	return m, func(at time.Time) sample {
		t.Helper()
		got, err := c.scrape()
		if err != nil {
			t.Fatal(err)
		}
		return sample{at: at, m: got}
	}
}

// within fails t unless lo < got <= hi (a histogram's bucket).
func within(t *testing.T, what string, got, lo, hi float64) {
	t.Helper()
	if got <= lo || got > hi {
		t.Errorf("%s = %v ms, want within (%v, %v] ms", what, got, lo, hi)
	}
}

// TestStages scrapes the engine's own histograms, as the bench reads them
// from its child, before and after a phase, and takes each stage's p99
// from what the phase added: what was counted before it does not count.
func TestStages(t *testing.T) {
	m, scrapeAt := engineMetrics(t)
	scrape := func() sample { return scrapeAt(time.Now()) }

	// Before the phase: slow steps, which must not count in it.
	for range 50 {
		m.StepDuration.Observe(1)
	}
	before := scrape()
	// The phase: 98 steps of 0.3 ms and 2 of 20 ms. The 99th of 100 lies
	// halfway into the bucket (12.8, 25.6] ms that holds the last two.
	for range 98 {
		m.StepDuration.Observe(0.0003)
	}
	m.StepDuration.Observe(0.02)
	m.StepDuration.Observe(0.02)
	// Timers all 3 ms late: the p99 lies in (2.5, 5] ms.
	for range 10 {
		m.TimerLateness.Observe(0.003)
		m.RecordE2E.Observe(0.003)
		m.InputWait.Observe(0.003)
	}
	after := scrape()

	st := stages(before, after)
	if want := 19.2; math.Abs(st.Step-want) > 1e-6 {
		t.Errorf("step p99 = %v ms, want %v", st.Step, want)
	}
	within(t, "timer lateness p99 (the engine's bucket)", st.TimerLateness, 1, 5)
	within(t, "record e2e p99", st.RecordE2E, 2.5, 5)
	// Buckets a factor of 1.5 apart from 0.5 ms: (2.53, 3.80] ms.
	within(t, "input wait p99", st.InputWait, 2.53, 3.8)
	// Nothing counted in the phase: 0, not a stale figure.
	if st.FetchDelay != 0 || st.EndProbe != 0 || st.Commit != 0 || st.MergeHold != 0 {
		t.Errorf("fetch delay %v, end probe %v, commit %v, merge hold %v ms: want 0 for histograms that counted nothing", st.FetchDelay, st.EndProbe, st.Commit, st.MergeHold)
	}
	if got := histQuantile(before.m, after.m, 0.5, hStep); got <= 0.0002 || got > 0.0004 {
		t.Errorf("step p50 = %v s, want within (0.2, 0.4] ms", got)
	}
}

// TestSplitLE: a bucket keeps its series' other labels, so that a
// histogram vector's series (the Pebble commit's phases) stay apart.
func TestSplitLE(t *testing.T) {
	for _, tc := range []struct{ labels, series, le string }{
		{`{le="0.001"}`, "x_bucket", "0.001"},
		{`{phase="total",le="+Inf"}`, `x_bucket{phase="total"}`, "+Inf"},
		{`{le="1",kind="flush"}`, `x_bucket{kind="flush"}`, "1"},
	} {
		series, le, ok := splitLE("x_bucket", tc.labels)
		if !ok || series != tc.series || le != tc.le {
			t.Errorf("splitLE(%s) = %q, %q, %v; want %q, %q", tc.labels, series, le, ok, tc.series, tc.le)
		}
	}
	if _, _, ok := splitLE("x_bucket", `{phase="total"}`); ok {
		t.Error("splitLE found a bound in a label set without le")
	}
}

// TestStagesMergeHoldKinds: the merge hold's p99 is taken over both kinds
// of hold together, and each kind's p99 and rate apart.
func TestStagesMergeHoldKinds(t *testing.T) {
	m, scrape := engineMetrics(t)
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

	before := scrape(t0)
	// Over 2 s: 198 holds of 3 ms for records, 2 of 100 ms for an end.
	for range 198 {
		m.MergeHold.WithLabelValues(engine.HoldRecords).Observe(0.003)
	}
	for range 2 {
		m.MergeHold.WithLabelValues(engine.HoldEnd).Observe(0.1)
	}
	st := stages(before, scrape(t0.Add(2*time.Second)))
	// Buckets a factor of 1.5 apart from 0.5 ms: 3 ms in (2.53, 3.80],
	// 100 ms in (97.3, 146.0].
	within(t, "merge hold p99 (198 of the 200 holds were 3 ms)", st.MergeHold, 2.53, 3.8)
	within(t, "merge hold for records p99", st.MergeHoldRecords, 2.53, 3.8)
	within(t, "merge hold for an end p99", st.MergeHoldEnd, 97.3, 146)
	if st.MergeHolds != [2]float64{99, 1} {
		t.Errorf("holds per second (records, end) = %v, want [99 1]", st.MergeHolds)
	}
}
