package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/loadgen"
)

// ThroughputResult is the result of the throughput scenario. Top-level
// latency and lateness refer to the fixed-rate phase named by
// LatencyPhase (75 % of the maximum when it ran).
type ThroughputResult struct {
	Scenario   string  `json:"scenario"`
	Broker     string  `json:"broker"`
	Partitions int32   `json:"partitions"`
	Machine    Machine `json:"machine"`
	Wait       string  `json:"wait"`
	Customers  int     `json:"customers"`
	// Warmup is the unreported run before this one, if any.
	Warmup *Warmup `json:"warmup,omitempty"`

	// Events is every input event of the run (backlog and live).
	Events int64 `json:"events"`
	// BacklogEvents is the max-rate phase's backlog, after MatureEvents.
	BacklogEvents int64 `json:"backlog_events"`
	// MatureEvents (MaturePerCustomer per customer) open the backlog: the
	// engine applies them before the max-rate phase is measured, at
	// MatureEventsPerSec (a fresh store's rate) in MatureSec.
	MaturePerCustomer  int     `json:"mature_events_per_customer"`
	MatureEvents       int64   `json:"mature_events"`
	MatureEventsPerSec float64 `json:"mature_events_per_sec"`
	MatureSec          float64 `json:"mature_sec"`
	// ProduceEventsPerSec is how fast the bench produced the backlog.
	ProduceEventsPerSec float64 `json:"produce_events_per_sec"`
	// EventsPerSec is the engine's maximum: applied events/s on the backlog.
	EventsPerSec float64 `json:"events_per_sec"`
	// MaxRateSec is how long the max-rate measurement lasted; it is cut at
	// Duration (MaxRateComplete false: the backlog outlasted it).
	MaxRateSec      float64 `json:"max_rate_sec"`
	MaxRateComplete bool    `json:"max_rate_complete"`
	// EngineCores and BenchCores are the CPU cores the engine process and
	// the bench process (broker included when embedded) used in the
	// max-rate phase.
	EngineCores float64 `json:"engine_cores"`
	BenchCores  float64 `json:"bench_cores"`
	// EngineCPUPerEventUS is the engine's CPU time per applied event in
	// the max-rate phase, in microseconds: steadier from run to run than
	// rates and latencies on a shared machine.
	EngineCPUPerEventUS float64 `json:"engine_cpu_us_per_event"`
	// Steps is what the engine's workers did in the max-rate phase.
	Steps Steps `json:"steps"`
	// CeilingEventsPerSec is a plain consumer group's rate on the backlog:
	// the median of CeilingRuns.
	CeilingEventsPerSec float64 `json:"ceiling_events_per_sec"`
	// CeilingRuns are the rates of each pass of the plain consumer, each a
	// group of its own reading the whole backlog.
	CeilingRuns []float64 `json:"ceiling_runs_events_per_sec"`
	Ratio       float64   `json:"ratio"`
	// SustainedEventsPerSec is the highest fixed rate the engine kept up
	// with (see RateResult.KeptUp); 0 when it kept up with none.
	SustainedEventsPerSec float64 `json:"sustained_events_per_sec"`
	// SkippedRates were not run: the engine fell behind at a lower rate.
	SkippedRates []float64 `json:"skipped_rates,omitempty"`
	// RateBaseEventsPerSec is what the fixed rates are percentages of: the
	// maximum EventsPerSec, or Config.RateBase when set.
	RateBaseEventsPerSec float64 `json:"rate_base_events_per_sec"`
	// Incomplete says why the engine's output was checked before it had
	// applied everything (the check then counts the rest as missing).
	Incomplete string `json:"incomplete,omitempty"`

	LatencyPhase    string   `json:"latency_phase"`
	LatencyMS       Latency  `json:"latency_ms"`
	TimerLatenessMS Lateness `json:"timer_lateness_ms"`
	// TriggerTimestamp is the timestamp type of the trigger records:
	// LogAppendTime (the broker's append time) or CreateTime (the engine's
	// producer's clock when it produced the record).
	TriggerTimestamp string       `json:"trigger_timestamp_type"`
	Rates            []RateResult `json:"rates"`

	ExpectedTriggers int   `json:"expected_triggers"`
	SeenTriggers     int   `json:"seen_triggers"`
	Missing          int   `json:"missing"`
	Unexpected       int   `json:"unexpected"`
	Duplicates       int   `json:"duplicates"`
	Unreadable       int   `json:"unreadable,omitempty"`
	BacklogTriggers  int   `json:"backlog_triggers"`
	StaleTriggers    int64 `json:"stale_triggers"`
	DeadLetters      int64 `json:"dead_letters"`
	TaskIdleExpired  int64 `json:"task_idle_expired"`
	ProduceErrors    int64 `json:"engine_produce_errors"`

	RSSMiB      float64 `json:"rss_mib"`
	PebbleBytes int64   `json:"pebble_bytes"`
	WallSec     float64 `json:"wall_sec"`
	CPUProfile  string  `json:"cpu_profile,omitempty"`
	// CPUOwners splits the CPU profile (CPUProfile) by whose code burnt
	// it; absent without a profile.
	CPUOwners *CPUOwners `json:"cpu_owners,omitempty"`
	// CPUOwnersPhase is the phase of that profile: "max" or the percent;
	// CPUOwnersUSPerEvent the engine's CPU per event in that phase, which
	// the shares split.
	CPUOwnersPhase      string  `json:"cpu_owners_phase,omitempty"`
	CPUOwnersUSPerEvent float64 `json:"cpu_owners_us_per_event,omitempty"`
	// HalfCeilingBudgetUS is the CPU per event that all the machine's cores
	// leave at half the ceiling's rate, the ratio's target: what the
	// engine's CPU per event, and its parts (CPUOwners), compare with.
	HalfCeilingBudgetUS float64 `json:"half_ceiling_budget_us_per_event"`
}

// owners splits the profile taken in phase (its engine CPU per event us)
// by owner into res.
func (res *ThroughputResult) owners(path, phase string, us float64) error {
	o, err := ProfileOwners(path)
	if err != nil {
		return err
	}
	res.CPUOwners, res.CPUOwnersPhase, res.CPUOwnersUSPerEvent = &o, phase, us
	return nil
}

// RateResult is one fixed-rate phase.
type RateResult struct {
	Percent             float64 `json:"percent"`
	TargetEventsPerSec  float64 `json:"target_events_per_sec"`
	EventsPerSec        float64 `json:"events_per_sec"` // offered: produced per second
	AppliedEventsPerSec float64 `json:"applied_events_per_sec"`
	Events              int64   `json:"events"`
	Seconds             float64 `json:"seconds"`
	MaxLag              float64 `json:"max_lag"`
	// KeptUp: the engine applied at least 95 % of the offered rate and its
	// lag stayed under one second's worth of events.
	KeptUp          bool     `json:"kept_up"`
	LatencyMS       Latency  `json:"latency_ms"`
	TimerLatenessMS Lateness `json:"timer_lateness_ms"`
	// ProduceMS is the bench's own delay: event time to the broker's
	// acknowledgement of the input record. Input the broker acknowledged
	// late reaches the engine late, which no engine can help.
	ProduceMS Latency `json:"produce_ms"`
	// EmitToAppendMS is the engine's own output delay: a trigger's
	// emitted_at (its clock when it fired) to its record timestamp.
	EmitToAppendMS Latency `json:"emit_to_append_ms"`
	// LatencyByRuleMS is LatencyMS per rule: event rules and absence
	// timers have different paths to their output.
	LatencyByRuleMS map[string]Latency `json:"latency_by_rule_ms"`
	RSSMiB          float64            `json:"rss_mib"`
	EngineCores     float64            `json:"engine_cores"`
	// EngineCPUPerEventUS: as ThroughputResult's, in this phase.
	EngineCPUPerEventUS float64 `json:"engine_cpu_us_per_event"`
	BenchCores          float64 `json:"bench_cores"`
	// EngineGCShare is the share of the engine's CPU time its garbage
	// collector took in this phase (0 to 1).
	EngineGCShare float64 `json:"engine_gc_share"`
	Steps         Steps   `json:"steps"`
	// StagesMS is the p99 of the stages timer lateness and trigger
	// latency are made of, from the engine's histograms (Stages).
	StagesMS Stages `json:"stages_p99_ms"`

	start, end     time.Time
	lat, late, e2a *hist
	byRule         map[string]*hist
}

const mib = 1 << 20

func (r *runner) throughput(ctx context.Context) (*ThroughputResult, error) {
	cfg := r.cfg
	res := &ThroughputResult{Scenario: ScenarioThroughput, Broker: r.cl.describe(), Partitions: cfg.Partitions,
		Wait: cfg.Wait.String(), Customers: cfg.Customers}
	defer func() {
		res.WallSec = time.Since(r.started).Seconds()
		r.mach.LoadEnd = loadavg()
		res.Machine = r.mach
	}()

	n := cfg.Events
	if n == 0 {
		n = int(cfg.Duration.Seconds() * cfg.RateEstimate)
	}
	// The backlog: the maturing events, then the measured ones.
	aged := cfg.matureEvents()
	all := aged + n
	res.MaturePerCustomer, res.MatureEvents = cfg.maturePerCustomer(), int64(aged)
	simRate := max(defaultSimulatedRate, float64(all)/maxSimulatedSpan.Seconds())
	gen, err := loadgen.New(loadgen.Config{
		Customers: cfg.Customers, Seed: cfg.Seed, Wait: cfg.Wait, DeadlineGuard: cfg.DeadlineGuard,
		MaxSessions:      max(1000, min(cfg.Customers/4, 50_000)),
		ClickstreamTopic: r.cl.topics.Clickstream, OrdersTopic: r.cl.topics.Orders,
	})
	if err != nil {
		return nil, err
	}
	reader, err := startTriggerReader(r.cl.brokers, r.cl.topics.Triggers)
	if err != nil {
		return nil, err
	}
	defer reader.close()

	// Phase 1: the backlog, on a simulated clock that ends 5s ago.
	bulk, err := r.cl.producer(kgo.ProducerLinger(5 * time.Millisecond))
	if err != nil {
		return nil, err
	}
	var produced, produceErrs atomic.Int64
	var firstErr atomic.Value
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			if produceErrs.Add(1) == 1 {
				firstErr.Store(err)
			}
			return
		}
		produced.Add(1)
	}
	span := time.Duration(float64(all) / simRate * float64(time.Second))
	simStart := time.Now().Add(-span - 5*time.Second)
	r.prog.set("produce", func() string {
		return fmt.Sprintf("backlog %s/%s events", si(float64(produced.Load())), si(float64(all)))
	})
	t0 := time.Now()
	for i := range all {
		if i&1023 == 0 && ctx.Err() != nil {
			bulk.Close()
			return nil, ctx.Err()
		}
		rec := gen.Next(simStart.Add(time.Duration(float64(i) / simRate * float64(time.Second))))
		bulk.Produce(ctx, &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Timestamp: rec.TS}, promise)
	}
	if err := bulk.Flush(ctx); err != nil {
		bulk.Close()
		return nil, err
	}
	bulk.Close()
	if produceErrs.Load() > 0 {
		return nil, fmt.Errorf("bench: %d backlog records not produced: %v", produceErrs.Load(), firstErr.Load())
	}
	res.BacklogEvents = int64(n)
	res.ProduceEventsPerSec = float64(all) / time.Since(t0).Seconds()
	r.prog.logf("backlog: %d events (%d maturing, %d per customer, then %d measured) produced in %v (%s/s), event times over %v",
		all, aged, res.MaturePerCustomer, n, time.Since(t0).Round(time.Millisecond), si(res.ProduceEventsPerSec), span.Round(time.Second))

	// Phase 2: the ceiling.
	for pass := range ceilingPasses {
		v, err := r.ceiling(ctx, int64(all), pass)
		if err != nil {
			return nil, err
		}
		res.CeilingRuns = append(res.CeilingRuns, v)
	}
	res.CeilingEventsPerSec = median(res.CeilingRuns)
	r.prog.logf("ceiling: a plain consumer group reads %s events/s (median of %d passes)", si(res.CeilingEventsPerSec), ceilingPasses)

	// Phase 3: the engine on the backlog.
	c, err := startChild(r.spec(r.group()))
	if err != nil {
		return nil, err
	}
	defer c.stop(30 * time.Second)
	mon := newMonitor(c, 50*time.Millisecond)
	defer mon.close()
	r.prog.set("start", func() string { return "waiting for the engine's /readyz" })
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	readyAt, err := c.waitReady(rctx, 20*time.Millisecond)
	cancel()
	if err != nil {
		return nil, err
	}
	profDone := make(chan error, 1)
	if cfg.CPUProfile == "" {
		profDone <- nil
	}
	phase := "mature"
	if aged == 0 {
		phase = "max-rate"
	}
	r.prog.set(phase, func() string {
		s, _ := mon.latest()
		return fmt.Sprintf("applied %s/%s events  lag %s  rss %.0f MiB", si(s.consumed), si(float64(all)), si(s.lag), float64(s.rss)/mib)
	})
	// Applying starts at the last sample before the engine applied
	// anything (it is assigned and fetching by then), as the ceiling's
	// starts at its assignment. The measurement starts there too, or,
	// when the state is matured first, at the first sample that has
	// applied the maturing events.
	var first, start, end sample
	var applying, measuring bool
	var cpu cpuMeter
	measure := func(s sample) {
		measuring, start = true, s
		cpu = startCPU(c.cmd.Process.Pid)
		if cfg.CPUProfile != "" && cfg.ProfileRate == 0 {
			go func() { profDone <- c.profile(ctx, cfg.ProfileSeconds, cfg.CPUProfile) }()
		}
		if aged > 0 {
			res.MatureSec = s.at.Sub(first.at).Seconds()
			if res.MatureSec > 0 {
				res.MatureEventsPerSec = s.consumed / res.MatureSec
			}
			r.prog.logf("matured: %d events applied at %s/s over %.1fs (a fresh store's rate); measuring the max rate", aged, si(res.MatureEventsPerSec), res.MatureSec)
			r.prog.set("max-rate", func() string {
				s, _ := mon.latest()
				return fmt.Sprintf("applied %s/%s events  lag %s  rss %.0f MiB", si(s.consumed-float64(aged)), si(float64(n)), si(s.lag), float64(s.rss)/mib)
			})
		}
	}
	timeout := cfg.Duration + cfg.DrainTimeout + time.Duration(aged/1000)*time.Second
	err = r.waitFor(ctx, "the engine to apply the backlog", c, timeout, 10*time.Millisecond, func() bool {
		s, ok := mon.latest()
		if !ok {
			return false
		}
		if !applying {
			if s.consumed == 0 {
				first = s
				return false
			}
			applying = true
			if first.at.IsZero() {
				// Applying began before the first sample: start at ready.
				first = sample{at: readyAt}
			}
			if aged == 0 {
				measure(first)
			}
		}
		if !measuring {
			if s.consumed < float64(aged) {
				return false
			}
			measure(s)
		}
		if s.consumed >= float64(all) || s.at.Sub(start.at) >= cfg.Duration {
			end = s
			return true
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	res.EngineCores, res.BenchCores = cpu.cores()
	res.Steps = steps(start, end)
	res.MaxRateComplete = end.consumed >= float64(all)
	res.MaxRateSec = end.at.Sub(start.at).Seconds()
	if res.MaxRateSec > 0 {
		res.EventsPerSec = (end.consumed - start.consumed) / res.MaxRateSec
	}
	if res.CeilingEventsPerSec > 0 {
		res.Ratio = res.EventsPerSec / res.CeilingEventsPerSec
		res.HalfCeilingBudgetUS = float64(r.mach.CPUs) * 1e6 / (res.CeilingEventsPerSec / 2)
	}
	res.EngineCPUPerEventUS = cpuPerEventUS(res.EngineCores, res.EventsPerSec)
	r.prog.logf("engine: %s events/s over %.1fs (%s of the ceiling)%s", si(res.EventsPerSec), res.MaxRateSec,
		pct(res.Ratio), map[bool]string{false: "; cut at --duration, draining the rest"}[res.MaxRateComplete])
	if res.EventsPerSec <= 0 {
		return res, errors.New("bench: the engine applied nothing")
	}
	if res.MaxRateComplete && res.MaxRateSec < cfg.Duration.Seconds()/2 {
		r.prog.logf("warning: the backlog lasted %.1fs of --duration %s, too short for a steady-state maximum; raise --rate-estimate or --events", res.MaxRateSec, cfg.Duration)
	}
	if !res.MaxRateComplete {
		r.prog.set("drain", func() string {
			s, _ := mon.latest()
			return fmt.Sprintf("applied %s/%s events", si(s.consumed), si(float64(all)))
		})
		if err := r.waitProgress(ctx, "the engine to apply the backlog", c, mon, cfg.DrainTimeout, func(s sample) bool {
			return s.consumed >= float64(all)
		}); err != nil {
			return res, err
		}
	}
	if cfg.CPUProfile == "" || cfg.ProfileRate == 0 {
		if err := <-profDone; err != nil {
			r.prog.logf("cpu profile: %v", err)
		} else if cfg.CPUProfile != "" {
			res.CPUProfile = cfg.CPUProfile + " (max-rate phase)"
			if err := res.owners(cfg.CPUProfile, "max", res.EngineCPUPerEventUS); err != nil {
				r.prog.logf("cpu profile: %v", err)
			}
		}
	}
	mon.setInterval(250 * time.Millisecond)

	// Phase 4: fixed rates with live event times.
	live, err := r.cl.producer(kgo.ProducerLinger(0))
	if err != nil {
		return res, err
	}
	defer live.Close()
	total := int64(all)
	var lastTS time.Time
	behind := false
	res.RateBaseEventsPerSec = res.EventsPerSec
	if cfg.RateBase > 0 {
		res.RateBaseEventsPerSec = cfg.RateBase
		r.prog.logf("fixed rates: percentages of %s events/s (--rate-base), not of the measured maximum", si(cfg.RateBase))
	}
	for _, p := range cfg.Rates {
		if behind && !cfg.AllRates {
			res.SkippedRates = append(res.SkippedRates, p)
			continue
		}
		if behind {
			// Start every phase caught up, so that phases do not inherit
			// each other's backlog.
			r.prog.set("catch up", func() string {
				s, _ := mon.latest()
				return fmt.Sprintf("applied %s/%s", si(s.consumed), si(float64(total)))
			})
			if err := r.waitProgress(ctx, "the engine to catch up", c, mon, cfg.DrainTimeout, func(s sample) bool {
				return s.consumed >= float64(total)
			}); err != nil {
				return res, err
			}
		}
		rr := RateResult{Percent: p, TargetEventsPerSec: res.RateBaseEventsPerSec * p / 100, lat: newHist(), late: newHist(), e2a: newHist(), byRule: map[string]*hist{}}
		r.prog.set(fmt.Sprintf("rate %g%%", p), func() string {
			return fmt.Sprintf("generating %s events", si(rr.TargetEventsPerSec*cfg.Duration.Seconds()))
		})
		genStart := time.Now()
		sched, err := newSchedule(ctx, gen, rr.TargetEventsPerSec, cfg.Duration)
		if err != nil {
			return res, err
		}
		r.prog.logf("rate %g%%: %d events generated in %v, before the phase", p, len(sched.recs), time.Since(genStart).Round(time.Millisecond))
		if late := time.Since(sched.start); late > 0 {
			r.prog.logf("warning: rate %g%%: its events were generated %v after the phase was due to start; the first go out late", p, late.Round(time.Millisecond))
		}
		if err := sched.waitStart(ctx); err != nil {
			return res, err
		}
		var sent atomic.Int64
		r.prog.set(fmt.Sprintf("rate %g%%", p), func() string {
			s, _ := mon.latest()
			return fmt.Sprintf("target %s/s  sent %s  lag %s  triggers %d  rss %.0f MiB",
				si(rr.TargetEventsPerSec), si(float64(sent.Load())), si(s.lag), reader.count(), float64(s.rss)/mib)
		})
		before, _ := mon.scrapeOnce()
		mon.startWindow()
		if cfg.CPUProfile != "" && cfg.ProfileRate == p {
			go func() { profDone <- c.profile(ctx, cfg.ProfileSeconds, cfg.CPUProfile) }()
		}
		cpu := startCPU(c.cmd.Process.Pid)
		rr.start = time.Now()
		acks := newSyncHist()
		ts, err := sched.send(ctx, live, &sent, func(rec *kgo.Record, err error) {
			promise(rec, err)
			if err == nil {
				acks.record(time.Since(rec.Timestamp))
			}
		})
		rr.end = time.Now()
		rr.EngineCores, rr.BenchCores = cpu.cores()
		if err != nil {
			return res, err
		}
		if ts.After(lastTS) {
			lastTS = ts
		}
		after, _ := mon.scrapeOnce()
		win := mon.endWindow()
		rr.Events = sent.Load()
		total += rr.Events
		rr.Seconds = rr.end.Sub(rr.start).Seconds()
		rr.EventsPerSec = float64(rr.Events) / rr.Seconds
		rr.AppliedEventsPerSec = (after.consumed - before.consumed) / after.at.Sub(before.at).Seconds()
		rr.EngineCPUPerEventUS = cpuPerEventUS(rr.EngineCores, rr.AppliedEventsPerSec)
		for _, s := range win {
			rr.MaxLag = max(rr.MaxLag, s.lag)
		}
		rr.KeptUp = rr.AppliedEventsPerSec >= 0.95*rr.EventsPerSec && rr.MaxLag < rr.EventsPerSec
		if rr.KeptUp {
			res.SustainedEventsPerSec = max(res.SustainedEventsPerSec, rr.EventsPerSec)
		} else {
			behind = true
		}
		// The last records of the phase are acknowledged in the next one;
		// what is seen by now is representative.
		rr.ProduceMS = acks.latency()
		rr.RSSMiB = float64(after.rss) / mib
		rr.Steps = steps(before, after)
		rr.StagesMS = stages(before, after)
		rr.EngineGCShare = gcShare(before, after, rr.EngineCores)
		res.Rates = append(res.Rates, rr)
		if err := c.alive(); err != nil {
			return res, err
		}
		r.prog.logf("rate %g%%: offered %s/s (target %s/s), applied %s/s, max lag %s%s; input acknowledged p99 %.0f ms, max %.0f ms after its event time",
			p, si(rr.EventsPerSec), si(rr.TargetEventsPerSec), si(rr.AppliedEventsPerSec), si(rr.MaxLag),
			map[bool]string{false: " (falling behind)"}[rr.KeptUp], rr.ProduceMS.P99, rr.ProduceMS.Max)
	}
	if len(res.SkippedRates) > 0 {
		r.prog.logf("skipped the rates %v%%: the engine fell behind at a lower one (--all-rates runs them)", res.SkippedRates)
	}
	if cfg.CPUProfile != "" && cfg.ProfileRate != 0 {
		if !slices.Contains(cfg.Rates, cfg.ProfileRate) || slices.Contains(res.SkippedRates, cfg.ProfileRate) {
			r.prog.logf("cpu profile: no %g%% phase", cfg.ProfileRate)
		} else if err := <-profDone; err != nil {
			r.prog.logf("cpu profile: %v", err)
		} else {
			res.CPUProfile = fmt.Sprintf("%s (%g%% phase)", cfg.CPUProfile, cfg.ProfileRate)
			for _, rr := range res.Rates {
				if rr.Percent != cfg.ProfileRate {
					continue
				}
				if err := res.owners(cfg.CPUProfile, fmt.Sprintf("%g%%", rr.Percent), rr.EngineCPUPerEventUS); err != nil {
					r.prog.logf("cpu profile: %v", err)
				}
			}
		}
	}
	if produceErrs.Load() > 0 {
		return res, fmt.Errorf("bench: %d live records not produced: %v", produceErrs.Load(), firstErr.Load())
	}
	if err := live.Flush(ctx); err != nil {
		return res, err
	}
	res.Events = total

	// Phase 5: drain. Every deadline lies at most Wait after the last
	// event; once it has passed and the engine holds no timer and no
	// unacknowledged output, the output is complete.
	quiet := lastTS.Add(cfg.Wait + time.Second)
	r.prog.set("drain", func() string {
		s, _ := mon.latest()
		return fmt.Sprintf("applied %s/%s  timers %s  outbox %s  triggers %d", si(s.consumed), si(float64(total)), si(s.timers), si(s.outbox), reader.count())
	})
	drainErr := r.waitProgress(ctx, "the engine to apply everything and fire every timer", c, mon, cfg.DrainTimeout, func(s sample) bool {
		return time.Now().After(quiet) && s.consumed >= float64(total) && s.timers == 0 && s.outbox == 0
	})
	if drainErr != nil {
		if ctx.Err() != nil || c.alive() != nil {
			return res, drainErr
		}
		res.Incomplete = drainErr.Error()
		r.prog.logf("%v: reporting what the engine did so far", drainErr)
	}
	final, _ := mon.scrapeOnce()
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ends, err := r.cl.endOffsets(ectx, r.cl.topics.Triggers)
	cancel()
	if err != nil {
		return res, err
	}
	if err := r.waitFor(ctx, "the trigger reader to catch up", nil, time.Minute, 20*time.Millisecond, func() bool {
		return reader.caughtUp(ends[r.cl.topics.Triggers])
	}); err != nil {
		return res, err
	}
	_, peak := c.rss()
	res.RSSMiB = float64(peak) / mib
	res.PebbleBytes = c.pebbleBytes()
	res.StaleTriggers = int64(final.m[mStale])
	res.DeadLetters = int64(final.m[mDeadLetters])
	res.TaskIdleExpired = int64(final.m[mIdleExpired])
	res.ProduceErrors = int64(final.m[mProduceError])
	mon.close()
	if err := c.stop(30 * time.Second); err != nil {
		r.prog.logf("engine stop: %v", err)
	}

	// Latency per phase, by qualifying moment; the check against the oracle.
	seen, dups, bad, tsType := reader.snapshot()
	res.TriggerTimestamp = tsType
	liveStart := time.Time{}
	if len(res.Rates) > 0 {
		liveStart = res.Rates[0].start
	}
	for _, s := range seen {
		if s.qualifiedAt.Before(liveStart) || liveStart.IsZero() {
			res.BacklogTriggers++
			continue
		}
		for i := range res.Rates {
			rr := &res.Rates[i]
			if !s.qualifiedAt.Before(rr.start) && s.qualifiedAt.Before(rr.end) {
				lat := s.appendedAt.Sub(s.qualifiedAt)
				rr.lat.record(lat)
				h := rr.byRule[s.rule]
				if h == nil {
					h = newHist()
					rr.byRule[s.rule] = h
				}
				h.record(lat)
				rr.late.record(s.emittedAt.Sub(s.qualifiedAt))
				rr.e2a.record(s.appendedAt.Sub(s.emittedAt))
				break
			}
		}
	}
	for i := range res.Rates {
		rr := &res.Rates[i]
		rr.LatencyMS, rr.TimerLatenessMS, rr.EmitToAppendMS = rr.lat.latency(), rr.late.lateness(), rr.e2a.latency()
		rr.LatencyByRuleMS = make(map[string]Latency, len(rr.byRule))
		for rule, h := range rr.byRule {
			rr.LatencyByRuleMS[rule] = h.latency()
		}
	}
	if i := latencyPhase(res.Rates); i >= 0 {
		res.LatencyPhase = fmt.Sprintf("%g%%", res.Rates[i].Percent)
		res.LatencyMS, res.TimerLatenessMS = res.Rates[i].LatencyMS, res.Rates[i].TimerLatenessMS
	}
	want := gen.Oracle().Expected(time.Now().Add(24 * time.Hour))
	ck := check(want, seen, dups, bad, r.stderr, 5)
	if ck.Missing > 0 || ck.Unexpected > 0 {
		r.explain(ctx, ck, r.stderr, 3)
	}
	res.ExpectedTriggers, res.SeenTriggers = ck.Expected, ck.Seen
	res.Missing, res.Unexpected, res.Duplicates, res.Unreadable = ck.Missing, ck.Unexpected, ck.Duplicates, ck.Unreadable
	return res, drainErr
}

// Steps summarises the engine's steps (spur_step_duration_seconds) between
// two samples: a step applies what a worker had buffered and commits it in
// one Pebble batch.
type Steps struct {
	PerSec        float64 `json:"per_sec"`
	EventsPerStep float64 `json:"events_per_step"`
	MeanMS        float64 `json:"mean_ms"`
}

func steps(a, b sample) Steps {
	n := b.m[mStepCount] - a.m[mStepCount]
	el := b.at.Sub(a.at).Seconds()
	if n <= 0 || el <= 0 {
		return Steps{}
	}
	return Steps{PerSec: n / el, EventsPerStep: (b.consumed - a.consumed) / n, MeanMS: (b.m[mStepSum] - a.m[mStepSum]) / n * 1000}
}

// gcShare is the garbage collector's share of the engine's CPU between two
// samples, the engine having used cores on average.
func gcShare(a, b sample, cores float64) float64 {
	el := b.at.Sub(a.at).Seconds()
	if cores <= 0 || el <= 0 {
		return 0
	}
	return min(max((b.m[mGCCPU]-a.m[mGCCPU])/(cores*el), 0), 1)
}

// latencyPhase picks the fixed-rate phase the top-level latency reports:
// 75 %, else the highest below it, else the first.
func latencyPhase(rs []RateResult) int {
	best := -1
	for i, rr := range rs {
		if rr.Percent == 75 {
			return i
		}
		if rr.Percent < 75 && (best < 0 || rr.Percent > rs[best].Percent) {
			best = i
		}
	}
	if best < 0 && len(rs) > 0 {
		best = 0
	}
	return best
}

// ceilingPasses is how many times a plain consumer reads the backlog; the
// ceiling is the median. On the embedded broker a pass takes well under a
// second and the first is always the slowest, at about half the rate of
// the next two (docs/BENCHMARKS.md, session 11); one pass, as before,
// understated the ceiling.
const ceilingPasses = 3

// median returns the median of vs (the mean of the middle two when even).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ceiling measures a plain franz-go consumer group reading the n backlog
// events from both input topics and doing nothing with them: events/s from
// its assignment to its last record. Each pass is a group of its own.
func (r *runner) ceiling(ctx context.Context, n int64, pass int) (float64, error) {
	var assigned atomic.Int64
	cl, err := kgo.NewClient(
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			assigned.CompareAndSwap(0, time.Now().UnixNano())
		}),
		kgo.SeedBrokers(r.cl.brokers...),
		kgo.ConsumerGroup(fmt.Sprintf("%s-ceiling-%d", r.group(), pass)),
		kgo.ConsumeTopics(r.cl.topics.inputs()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Large fetches: the ceiling is what the broker and a client can
		// deliver, whatever limits the engine sets itself.
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(64<<20),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var got atomic.Int64
	r.prog.set("ceiling", func() string { return fmt.Sprintf("read %s/%s events", si(float64(got.Load())), si(float64(n))) })
	cctx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	for got.Load() < n {
		fs := cl.PollFetches(cctx)
		if err := cctx.Err(); err != nil {
			return 0, fmt.Errorf("bench: ceiling consumer read %d of %d events: %w", got.Load(), n, err)
		}
		if err := fs.Err0(); err != nil {
			return 0, fmt.Errorf("bench: ceiling consumer: %w", err)
		}
		got.Add(int64(fs.NumRecords()))
	}
	el := time.Since(time.Unix(0, assigned.Load())).Seconds()
	cl.LeaveGroup()
	if assigned.Load() == 0 || el <= 0 {
		return 0, errors.New("bench: the ceiling consumer was never assigned")
	}
	return float64(got.Load()) / el, nil
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }

// joinRates lists rates as si does, separated by slashes.
func joinRates(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = si(v)
	}
	return strings.Join(parts, " / ")
}

// WriteTable writes the human table.
func (res *ThroughputResult) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "spur bench (throughput) on %s, %d partitions, wait %s, %d customers\n", res.Broker, res.Partitions, res.Wait, res.Customers)
	fmt.Fprintf(w, "machine: %s\n", res.Machine)
	if wu := res.Warmup; wu != nil {
		fmt.Fprintf(w, "after a warm-up run (not reported) of %.0fs with %gs phases: its engine max %.0f events/s at %.1f µs/ev\n",
			wu.WallSec, wu.PhaseSec, wu.EventsPerSec, wu.EngineCPUPerEventUS)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tevents/s\t\n")
	fmt.Fprintf(tw, "ceiling (plain consumer group, median of %s)\t%.0f\t\n", joinRates(res.CeilingRuns), res.CeilingEventsPerSec)
	if res.MatureEvents > 0 {
		fmt.Fprintf(tw, "engine, maturing the state first (%d events, %d per customer, %.1fs; not measured)\t%.0f\t\n",
			res.MatureEvents, res.MaturePerCustomer, res.MatureSec, res.MatureEventsPerSec)
	}
	fmt.Fprintf(tw, "engine, max rate (%d events, %.1fs%s)\t%.0f\t\n", res.BacklogEvents, res.MaxRateSec,
		map[bool]string{false: ", cut"}[res.MaxRateComplete], res.EventsPerSec)
	fmt.Fprintf(tw, "ratio\t%s\t\n", pct(res.Ratio))
	fmt.Fprintf(tw, "engine, highest fixed rate it kept up with\t%.0f\t\n", res.SustainedEventsPerSec)
	fmt.Fprintf(tw, "cores used in the max-rate phase: engine / bench+broker\t%.2f / %.2f\t\n", res.EngineCores, res.BenchCores)
	fmt.Fprintf(tw, "engine CPU per event in the max-rate phase, µs\t%.1f\t\n", res.EngineCPUPerEventUS)
	if res.HalfCeilingBudgetUS > 0 {
		fmt.Fprintf(tw, "CPU per event that all %d cores leave at half the ceiling's rate, µs\t%.2f\t\n", res.Machine.CPUs, res.HalfCeilingBudgetUS)
	}
	if o := res.CPUOwners; o != nil {
		us := res.CPUOwnersUSPerEvent
		fmt.Fprintf(tw, "of the engine's CPU per event in the %s phase (profile), µs: Pebble (with its background) + Kafka client / spur\t%.1f / %.1f\t\n",
			res.CPUOwnersPhase, us*(o.Pebble+o.PebbleBackground+o.KafkaClient), us*o.Spur)
	}
	fmt.Fprintf(tw, "engine steps in the max-rate phase: per s / events per step / mean ms\t%.0f / %.1f / %.2f\t\n", res.Steps.PerSec, res.Steps.EventsPerStep, res.Steps.MeanMS)
	tw.Flush()
	if o := res.CPUOwners; o != nil {
		fmt.Fprintf(w, "engine CPU by owner (profile of the %s phase): %s\n", res.CPUOwnersPhase, o)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "rate\ttarget/s\toffered/s\tapplied/s\tkept up\tmax lag\ttriggers\tlat p50 ms\tp99\tp99.9\tmax\tlate p50 ms\tp99\tmax\trss MiB\tcores eng/bench\tµs/ev\tgc\tsteps/s\tev/step\tstep ms\tinput ack p99/max ms\temit→append p99/max ms\t\n")
	for _, rr := range res.Rates {
		fmt.Fprintf(tw, "%g%%\t%.0f\t%.0f\t%.0f\t%s\t%.0f\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%.2f/%.2f\t%.1f\t%s\t%.0f\t%.1f\t%.2f\t%.0f/%.0f\t%.0f/%.0f\t\n",
			rr.Percent, rr.TargetEventsPerSec, rr.EventsPerSec, rr.AppliedEventsPerSec, map[bool]string{true: "yes", false: "no"}[rr.KeptUp], rr.MaxLag, rr.LatencyMS.Count,
			rr.LatencyMS.P50, rr.LatencyMS.P99, rr.LatencyMS.P999, rr.LatencyMS.Max,
			rr.TimerLatenessMS.P50, rr.TimerLatenessMS.P99, rr.TimerLatenessMS.Max, rr.RSSMiB, rr.EngineCores, rr.BenchCores, rr.EngineCPUPerEventUS, pct(rr.EngineGCShare), rr.Steps.PerSec, rr.Steps.EventsPerStep, rr.Steps.MeanMS, rr.ProduceMS.P99, rr.ProduceMS.Max, rr.EmitToAppendMS.P99, rr.EmitToAppendMS.Max)
	}
	tw.Flush()
	if len(res.SkippedRates) > 0 {
		fmt.Fprintf(w, "skipped %v%%: the engine fell behind at a lower rate\n", res.SkippedRates)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "rate\tengine p99 ms: timer lateness\trecord e2e\tfetch delay\tinput wait\tmerge hold\tfor records (/s)\tfor an end (/s)\tstep\tpebble commit\tend probe\t\n")
	for _, rr := range res.Rates {
		st := rr.StagesMS
		fmt.Fprintf(tw, "%g%%\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f (%.0f)\t%.1f (%.0f)\t%.2f\t%.2f\t%.2f\t\n", rr.Percent, st.TimerLateness, st.RecordE2E, st.FetchDelay, st.InputWait, st.MergeHold,
			st.MergeHoldRecords, st.MergeHolds[0], st.MergeHoldEnd, st.MergeHolds[1], st.Step, st.Commit, st.EndProbe)
	}
	tw.Flush()
	res.writeRuleLatency(w)
	fmt.Fprintf(w, "latency: qualifying moment → trigger record timestamp (%s); lateness: emitted_at − qualified_at\n\n", res.TriggerTimestamp)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	verdict := "OK"
	if res.Missing != 0 || res.Unexpected != 0 {
		verdict = "MISMATCH"
	}
	if res.Incomplete != "" {
		verdict += " (INCOMPLETE: " + res.Incomplete + ")"
	}
	fmt.Fprintf(tw, "triggers\texpected %d, seen %d (backlog %d), missing %d, unexpected %d, duplicates %d: %s\n",
		res.ExpectedTriggers, res.SeenTriggers, res.BacklogTriggers, res.Missing, res.Unexpected, res.Duplicates, verdict)
	fmt.Fprintf(tw, "engine\tstale %d, dead letters %d, task idle expired %d, produce errors %d\n", res.StaleTriggers, res.DeadLetters, res.TaskIdleExpired, res.ProduceErrors)
	fmt.Fprintf(tw, "memory\tpeak RSS %.0f MiB, Pebble %.1f MiB\n", res.RSSMiB, float64(res.PebbleBytes)/mib)
	fmt.Fprintf(tw, "run\t%d events in %.0fs\n", res.Events, res.WallSec)
	tw.Flush()
}

// writeRuleLatency writes each rule's latency per fixed-rate phase.
func (res *ThroughputResult) writeRuleLatency(w io.Writer) {
	var rules []string
	seen := map[string]bool{}
	for _, rr := range res.Rates {
		for rule := range rr.LatencyByRuleMS {
			if !seen[rule] {
				seen[rule] = true
				rules = append(rules, rule)
			}
		}
	}
	if len(rules) == 0 {
		return
	}
	slices.Sort(rules)
	fmt.Fprintln(w, "\nlatency by rule, ms (triggers: p50 / p99 / max)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "rule\t")
	for _, rr := range res.Rates {
		fmt.Fprintf(tw, "%g%%\t", rr.Percent)
	}
	fmt.Fprintln(tw)
	for _, rule := range rules {
		fmt.Fprintf(tw, "%s\t", rule)
		for _, rr := range res.Rates {
			l, ok := rr.LatencyByRuleMS[rule]
			if !ok {
				fmt.Fprintf(tw, "-\t")
				continue
			}
			fmt.Fprintf(tw, "%d: %.0f / %.0f / %.0f\t", l.Count, l.P50, l.P99, l.Max)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// cpuPerEventUS is cores ÷ events/s in microseconds; 0 without events.
func cpuPerEventUS(cores, eventsPerSec float64) float64 {
	if eventsPerSec <= 0 {
		return 0
	}
	return cores / eventsPerSec * 1e6
}
