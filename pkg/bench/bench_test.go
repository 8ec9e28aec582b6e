package bench

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/loadgen"
	"github.com/spur-crm/spur/pkg/observability"
	"github.com/spur-crm/spur/pkg/pipeline"
)

func TestCheck(t *testing.T) {
	q := time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)
	want := []loadgen.Expected{
		{Rule: "cart_abandonment", CustomerID: "c-1", QualifiedAt: q, CauseEventID: "e-1"},
		{Rule: "cart_abandonment", CustomerID: "c-2", QualifiedAt: q, CauseEventID: "e-2"},
		{Rule: "cart_abandonment", CustomerID: "c-3", QualifiedAt: q, CauseEventID: "e-3"},
	}
	seen := []seenTrigger{
		{id: "t1", rule: "cart_abandonment", customer: "c-1", cause: "e-1", causes: 1, qualifiedAt: q},
		// Same moment, other cause: unexpected, and c-2's is missing.
		{id: "t2", rule: "cart_abandonment", customer: "c-2", cause: "e-9", causes: 1, qualifiedAt: q},
		// A second id for c-1's coupon: unexpected.
		{id: "t3", rule: "cart_abandonment", customer: "c-1", cause: "e-1", causes: 1, qualifiedAt: q},
		{id: "t4", rule: "cart_abandonment", customer: "c-3", cause: "e-3", causes: 1, qualifiedAt: q.Add(time.Millisecond)},
	}
	var diag bytes.Buffer
	got := check(want, seen, 2, 0, &diag, 5)
	if got.Expected != 3 || got.Seen != 4 || got.Missing != 2 || got.Unexpected != 3 || got.Duplicates != 2 {
		t.Errorf("check = %+v, want expected 3, seen 4, missing 2 (c-2, c-3), unexpected 3, duplicates 2", got)
	}
	if !strings.Contains(diag.String(), "missing trigger: rule=cart_abandonment customer=c-2") {
		t.Errorf("diagnostics lack the missing c-2:\n%s", diag.String())
	}
	if ok := check(want, seen[:1], 0, 0, nil, 0); ok.Missing != 2 || ok.Unexpected != 0 {
		t.Errorf("subset: %+v", ok)
	}
}

func TestScrape(t *testing.T) {
	var encoding atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encoding.Store(r.Header.Get("Accept-Encoding"))
		w.Write([]byte(`# HELP spur_events_consumed_total Input records applied.
# TYPE spur_events_consumed_total counter
spur_events_consumed_total{topic="a",type="cart_add"} 10
spur_events_consumed_total{topic="b",type="order"} 2.5e+01
spur_timers_pending{partition="0"} 3
spur_step_duration_seconds_sum 0.5
spur_step_duration_seconds_count 7
odd{label="with } brace"} 1
`))
	}))
	defer srv.Close()
	c := &child{http: strings.TrimPrefix(srv.URL, "http://"), client: scrapeClient()}
	m, err := c.scrape()
	if err != nil {
		t.Fatal(err)
	}
	// The engine compresses its answer when asked to, at a cost of its
	// CPU during the measurement.
	if got := encoding.Load(); got != "" {
		t.Errorf("scrape asked for Accept-Encoding %q, want none", got)
	}
	for name, want := range map[string]float64{mConsumed: 35, mTimers: 3, mStepSum: 0.5, mStepCount: 7, "odd": 1} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
}

// TestGCShare: the collector's share of the engine's CPU comes from the
// Go collector's counter, which the engine's registry exposes.
func TestGCShare(t *testing.T) {
	reg := observability.NewRegistry()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == mGCCPU
	}
	if !found {
		t.Fatalf("the engine's registry has no %s", mGCCPU)
	}
	t0 := time.Now()
	a := sample{at: t0, m: map[string]float64{mGCCPU: 10}}
	b := sample{at: t0.Add(2 * time.Second), m: map[string]float64{mGCCPU: 10.5}}
	if got := gcShare(a, b, 1.25); math.Abs(got-0.2) > 1e-9 {
		t.Errorf("gcShare = %v, want 0.2 (0.5 s of GC in 2 s at 1.25 cores)", got)
	}
	if got := gcShare(a, b, 0); got != 0 {
		t.Errorf("gcShare without CPU = %v, want 0", got)
	}
}

func TestWritePipeline(t *testing.T) {
	dir := t.TempDir()
	if err := writePipeline("../../pipelines", dir, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cart_abandonment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, perrs := pipeline.Parse("cart_abandonment.yaml", b)
	if len(perrs) > 0 {
		t.Fatal(perrs)
	}
	if p.Trigger.Wait != 1500*time.Millisecond {
		t.Errorf("wait %v, want 1.5s", p.Trigger.Wait)
	}
	// The built-in copy parses as well.
	if _, perrs := pipeline.Parse("builtin.yaml", []byte(builtinPipeline)); len(perrs) > 0 {
		t.Fatal(perrs)
	}
}

func TestHist(t *testing.T) {
	h := newHist()
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	h.record(-time.Second)
	l := h.latency()
	if l.Count != 1001 || l.P50 < 499 || l.P50 > 501 || l.P99 < 989 || l.P99 > 991 || l.Max != 1000 {
		t.Errorf("latency = %+v", l)
	}
	if h.negative != 1 {
		t.Errorf("negative = %d", h.negative)
	}
	if e := newHist().lateness(); e != (Lateness{}) {
		t.Errorf("empty = %+v", e)
	}
}

// TestCustomerEvents checks that the load events are valid v1 events.
func TestCustomerEvents(t *testing.T) {
	dec, err := event.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	tp := topics{Clickstream: "c", Orders: "o"}
	recs, _ := customerEvents(nil, nil, tp, 41, time.Now().Add(-time.Hour))
	if len(recs) != loadEventsPerCustomer {
		t.Fatalf("%d records", len(recs))
	}
	types := []event.Type{event.ProductView, event.CartAdd, event.Order}
	for i, r := range recs {
		var ev event.Event
		if err := dec.Decode(r.Value, &ev); err != nil {
			t.Fatalf("%s: %v", r.Value, err)
		}
		if ev.Type != types[i] || ev.CustomerID != "c-42" || string(r.Key) != "c-42" || !ev.TS.Equal(r.Timestamp) {
			t.Errorf("record %d: %+v (key %s, ts %v)", i, ev, r.Key, r.Timestamp)
		}
	}
	if recs[2].Topic != "o" || recs[0].Topic != "c" {
		t.Errorf("topics %s %s", recs[0].Topic, recs[2].Topic)
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{}).Validate(); err == nil {
		t.Error("no binary: want an error")
	}
	if err := (Config{Exe: "spur", Rates: []float64{0}}).Validate(); err == nil {
		t.Error("rate 0: want an error")
	}
	c := Config{Exe: "spur", Scenario: ScenarioRestart}.withDefaults()
	if c.Customers != DefaultStateCustomers || c.Wait != DefaultRestartWait {
		t.Errorf("restart defaults: %+v", c)
	}
	for _, tc := range []struct {
		brokers  []string
		scenario string
		warmup   time.Duration
		want     time.Duration
	}{
		{nil, ScenarioThroughput, 0, 0},                             // embedded: none
		{[]string{"k:9092"}, ScenarioThroughput, 0, DefaultWarmup},  // external: the default
		{[]string{"k:9092"}, ScenarioThroughput, -1, 0},             // asked for none
		{nil, ScenarioThroughput, 5 * time.Second, 5 * time.Second}, // asked for
		{[]string{"k:9092"}, ScenarioRestart, 5 * time.Second, 0},   // throughput only
	} {
		c := Config{Exe: "spur", Brokers: tc.brokers, Scenario: tc.scenario, Warmup: tc.warmup}.withDefaults()
		if c.Warmup != tc.want {
			t.Errorf("brokers %v, %s, warm-up %v: got %v, want %v", tc.brokers, tc.scenario, tc.warmup, c.Warmup, tc.want)
		}
	}
	for _, tc := range []struct {
		scenario     string
		mature, want int
		estimate     float64
	}{
		{ScenarioThroughput, 0, DefaultMature, DefaultMatureRateEstimate},
		{ScenarioThroughput, 5, 5, DefaultMatureRateEstimate},
		{ScenarioThroughput, -1, 0, DefaultRateEstimate},
		{ScenarioRestart, 0, 0, DefaultRateEstimate},
	} {
		c := Config{Exe: "spur", Scenario: tc.scenario, Mature: tc.mature}.withDefaults()
		if c.Mature != tc.want || c.RateEstimate != tc.estimate {
			t.Errorf("%s, mature %d: got mature %d and rate estimate %v, want %d and %v", tc.scenario, tc.mature, c.Mature, c.RateEstimate, tc.want, tc.estimate)
		}
	}
	// The warm-up run matures nothing, whatever the measured run does:
	// its config comes after withDefaults.
	measured := Config{Exe: "spur", Warmup: time.Second}.withDefaults()
	if got, want := measured.matureEvents(), DefaultMature*DefaultCustomers; got != want {
		t.Errorf("measured run matures with %d events, want %d", got, want)
	}
	if got := warmupConfig(measured).matureEvents(); got != 0 {
		t.Errorf("warm-up run matures with %d events, want none", got)
	}
	if i := latencyPhase([]RateResult{{Percent: 25}, {Percent: 50}, {Percent: 90}}); i != 1 {
		t.Errorf("latency phase %d, want the 50%% one", i)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{1.2e6, 0.9e6, 1.0e6}, 1.0e6},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(c.in)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("median reordered its input: %v, was %v", c.in, in)
		}
	}
}
