package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// Warmup is what the unreported run before the measured one did
// (Config.Warmup).
type Warmup struct {
	// PhaseSec is the length of its phases; WallSec of the whole run.
	PhaseSec float64 `json:"phase_sec"`
	WallSec  float64 `json:"wall_sec"`
	// EventsPerSec is its engine's maximum and EngineCPUPerEventUS its CPU
	// per event then: against the measured run's, they show what warming
	// the broker changed.
	EventsPerSec        float64 `json:"events_per_sec"`
	EngineCPUPerEventUS float64 `json:"engine_cpu_us_per_event"`
	// Events is every input event it produced.
	Events int64 `json:"events"`
}

// warmUp runs the throughput scenario once, unreported, with phases of
// cfg.Warmup and only the warm-up rate, on topics, a group and an engine
// of its own. Its output must still match the oracle: a trigger missing or
// unexpected is an error (duplicates are at-least-once's re-sends, counted
// but allowed, as in a measured run).
func warmUp(ctx context.Context, cfg Config, stderr io.Writer) (*Warmup, error) {
	w := warmupConfig(cfg)
	fmt.Fprintf(stderr, "bench: warm-up run (not reported): %v phases, %g %% only\n", w.Duration, float64(warmupRate))
	r, err := newRunner(ctx, w, stderr)
	if err != nil {
		return nil, err
	}
	res, err := r.throughput(ctx)
	if err == nil && (res.Missing > 0 || res.Unexpected > 0) {
		err = fmt.Errorf("its triggers differ from the oracle: %d missing, %d unexpected", res.Missing, res.Unexpected)
	}
	r.close(err)
	if err != nil {
		return nil, err
	}
	out := &Warmup{PhaseSec: w.Duration.Seconds(), WallSec: time.Since(r.started).Seconds(), EventsPerSec: res.EventsPerSec,
		EngineCPUPerEventUS: res.EngineCPUPerEventUS, Events: res.Events}
	fmt.Fprintf(stderr, "bench: warm-up run done in %.0fs: engine max %s events/s at %.1f µs/ev\n", out.WallSec, si(out.EventsPerSec), out.EngineCPUPerEventUS)
	return out, nil
}

// warmupConfig is the configuration of the warm-up run before cfg's.
func warmupConfig(cfg Config) Config {
	w := cfg
	// Its backlog is sized as every backlog was before session 12: its
	// max-rate phase only warms the broker, and DefaultRateEstimate's
	// backlog for a minute (9M events) took the cold engine minutes to
	// drain.
	w.Duration, w.Events = cfg.Warmup, int(cfg.Warmup.Seconds()*warmupBacklogRate)
	w.Rates, w.AllRates, w.RateBase = []float64{warmupRate}, false, 0 // of its own maximum
	w.CPUProfile, w.ProfileRate, w.JSONFile = "", 0, ""
	w.Warmup = 0
	w.Mature = -1 // its maximum only warms the broker: no maturing
	if cfg.WorkDir != "" {
		w.WorkDir = filepath.Join(cfg.WorkDir, "warmup")
	}
	return w
}
