package main

import (
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestBenchSmoke runs a tiny `spur bench` (embedded broker, engine child
// process) after a warm-up run and checks that it completes and that the
// engine's output matches the loadgen oracle, after maturing the state
// (the default --mature). Its fixed rate is 5 % of --rate-base, not of the
// measured maximum. It checks no figure: performance is measured by
// `spur bench`, never by tests.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the spur binary")
	}
	cmd := exec.Command(spurBin, "--pipelines", "../../pipelines", "bench",
		"--duration", "3s", "--events", "20000", "--customers", "5000", "--rates", "5", "--rate-base", "60000", "--wait", "1s", "--json",
		"--warmup", "1s", // the warm-up run is checked against its oracle too
		"--cpuprofile", filepath.Join(t.TempDir(), "cpu.pprof"), "--profile-seconds", "1")
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spur bench: %v\n%s", err, stderr.String())
	}
	var res struct {
		Events, ExpectedTriggers, SeenTriggers, Missing, Unexpected int
		EventsPerSec, RSSMiB                                        float64
		PebbleBytes                                                 int64
		Rates                                                       []json.RawMessage
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"events", "events_per_sec", "ceiling_events_per_sec", "ratio", "latency_ms", "timer_lateness_ms",
		"expected_triggers", "seen_triggers", "missing", "unexpected", "duplicates", "rss_mib", "pebble_bytes", "rates", "engine_cpu_us_per_event"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	get := func(k string, v any) {
		if err := json.Unmarshal(raw[k], v); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	get("events", &res.Events)
	get("expected_triggers", &res.ExpectedTriggers)
	get("seen_triggers", &res.SeenTriggers)
	get("missing", &res.Missing)
	get("unexpected", &res.Unexpected)
	get("events_per_sec", &res.EventsPerSec)
	get("rss_mib", &res.RSSMiB)
	get("pebble_bytes", &res.PebbleBytes)
	get("rates", &res.Rates)
	var warm struct {
		PhaseSec     float64 `json:"phase_sec"`
		EventsPerSec float64 `json:"events_per_sec"`
		Events       int64
	}
	get("warmup", &warm)
	if warm.PhaseSec != 1 || warm.EventsPerSec <= 0 || warm.Events <= 0 {
		t.Errorf("warm-up %+v, want 1 s phases with events applied", warm)
	}
	var ceiling float64
	var passes []float64
	get("ceiling_events_per_sec", &ceiling)
	get("ceiling_runs_events_per_sec", &passes)
	if len(passes) != 3 || ceiling <= 0 || !slices.Contains(passes, ceiling) || slices.Min(passes) <= 0 {
		t.Errorf("ceiling %v from passes %v, want the median of three positive passes", ceiling, passes)
	}
	// The default --mature: 20 events per customer applied before the
	// max-rate phase is measured.
	var matureEvents, backlog int64
	var matureRate float64
	get("mature_events", &matureEvents)
	get("backlog_events", &backlog)
	get("mature_events_per_sec", &matureRate)
	if matureEvents != 20*5000 || backlog != 20000 || matureRate <= 0 || int64(res.Events) < matureEvents+backlog {
		t.Errorf("maturing: %d events at %v/s, then a backlog of %d (%d events in all); want 100000 at a positive rate, then 20000",
			matureEvents, matureRate, backlog, res.Events)
	}
	var cpuPerEvent float64
	get("engine_cpu_us_per_event", &cpuPerEvent)
	if cpuPerEvent <= 0 {
		t.Errorf("engine CPU per event %v µs, want a positive figure", cpuPerEvent)
	}
	// What half the ceiling's rate leaves per event, on all the cores.
	var budget float64
	get("half_ceiling_budget_us_per_event", &budget)
	if want := float64(runtime.NumCPU()) * 1e6 / (ceiling / 2); math.Abs(budget-want) > want*1e-9 {
		t.Errorf("half-ceiling budget %v µs per event, want %v (%d cores at half of %v events/s)", budget, want, runtime.NumCPU(), ceiling)
	}
	// The max-rate phase's profile, split by owner: shares of one whole,
	// spur's own among them.
	var owners map[string]float64
	var ownersUS float64
	get("cpu_owners", &owners)
	get("cpu_owners_us_per_event", &ownersUS)
	var sum float64
	for _, v := range owners {
		sum += v
	}
	if len(owners) != 6 || math.Abs(sum-1) > 1e-9 || owners["spur"] <= 0 || ownersUS != cpuPerEvent {
		t.Errorf("cpu owners %v (sum %v) at %v µs per event, want six shares of the max phase's %v µs, spur's among them", owners, sum, ownersUS, cpuPerEvent)
	}
	if res.Events < 20000 || res.EventsPerSec <= 0 || res.RSSMiB <= 0 || res.PebbleBytes <= 0 || len(res.Rates) != 1 {
		t.Errorf("implausible result: %s", out)
	}
	if len(res.Rates) == 1 {
		var rate struct {
			Target          float64                          `json:"target_events_per_sec"`
			LatencyMS       struct{ Count int64 }            `json:"latency_ms"`
			LatencyByRuleMS map[string]struct{ Count int64 } `json:"latency_by_rule_ms"`
			StagesMS        struct {
				Step      float64 `json:"step"`
				RecordE2E float64 `json:"record_e2e"`
			} `json:"stages_p99_ms"`
		}
		if err := json.Unmarshal(res.Rates[0], &rate); err != nil {
			t.Fatal(err)
		}
		var base float64
		get("rate_base_events_per_sec", &base)
		if base != 60000 || rate.Target != 3000 {
			t.Errorf("rate base %v, target %v events/s; want 60000 and 5 %% of it", base, rate.Target)
		}
		// The bench's pipeline has one rule, the abandoned-cart coupon.
		if l := rate.LatencyByRuleMS["cart_abandonment"]; rate.LatencyMS.Count == 0 || l.Count != rate.LatencyMS.Count || len(rate.LatencyByRuleMS) != 1 {
			t.Errorf("latency by rule %v, want cart_abandonment's %d triggers: %s", rate.LatencyByRuleMS, rate.LatencyMS.Count, res.Rates[0])
		}
		// The engine's own stages, from its histograms over the phase.
		if st := rate.StagesMS; st.Step <= 0 || st.RecordE2E <= 0 {
			t.Errorf("engine stages %+v, want the phase's steps and record delays counted: %s", st, res.Rates[0])
		}
	}
	if res.ExpectedTriggers == 0 || res.Missing != 0 || res.Unexpected != 0 || res.SeenTriggers != res.ExpectedTriggers {
		t.Errorf("output differs from the oracle: expected %d, seen %d, missing %d, unexpected %d\n%s",
			res.ExpectedTriggers, res.SeenTriggers, res.Missing, res.Unexpected, stderr.String())
	}
}

// limitedBuffer keeps the last 16 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 16<<10 {
		l.b = l.b[len(l.b)-16<<10:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

func TestNoneIfZero(t *testing.T) {
	// --deadline-guard 0 asks for none; bench.Config reads 0 as its default.
	if got := noneIfZero(0); got >= 0 {
		t.Errorf("noneIfZero(0) = %v, want negative (none)", got)
	}
	if got := noneIfZero(2 * time.Second); got != 2*time.Second {
		t.Errorf("noneIfZero(2s) = %v", got)
	}
}

func TestParseWarmup(t *testing.T) {
	for in, want := range map[string]time.Duration{"auto": 0, "0": -1, "0s": -1, "45s": 45 * time.Second} {
		if got, err := parseWarmup(in); err != nil || got != want {
			t.Errorf("parseWarmup(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1s"} {
		if _, err := parseWarmup(in); err == nil {
			t.Errorf("parseWarmup(%q): want an error", in)
		}
	}
}
