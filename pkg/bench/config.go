package bench

import (
	"errors"
	"fmt"
	"time"
)

// Scenarios.
const (
	ScenarioThroughput = "throughput"
	ScenarioRestart    = "restart"
	ScenarioMemory     = "memory"
)

// Defaults applied by Run to zero-valued Config fields.
const (
	DefaultDuration = 30 * time.Second
	// DefaultRateEstimate sizes the max-rate phase's backlog so that the
	// phase lasts --duration. It was 30,000 until session 12, long after
	// the engine's maximum had passed 100,000 events/s: the backlog then
	// drained in 3.3 s of a 15 s --duration, about five events per
	// customer on a fresh store. Over the whole 15 s the engine spends
	// about 45 % more CPU per event and its maximum is a quarter lower
	// (docs/BENCHMARKS.md, session 12).
	DefaultRateEstimate = 150_000
	// DefaultMatureRateEstimate sizes it when the state is matured first
	// (Config.Mature): the engine's maximum on mature customers was
	// 36-40k events/s in session 13, against about 80k on a fresh store.
	DefaultMatureRateEstimate = 60_000
	// DefaultMature is the events per customer applied before the max-rate
	// phase is measured. In a 60 s max-rate phase of session 13 the rate
	// fell from 79k to 38k events/s over the first 20 events per customer
	// and stayed there (docs/BENCHMARKS.md).
	DefaultMature            = 20
	DefaultPartitions        = 4
	DefaultCustomers         = 100_000
	DefaultStateCustomers    = 1_000_000
	DefaultWait              = 2 * time.Second
	DefaultRestartWait       = 10 * time.Second
	DefaultDeadlineGuard     = time.Second
	DefaultOverdue           = 10_000
	DefaultProfileSeconds    = 10
	DefaultDrainTimeout      = 2 * time.Minute
	DefaultWarmup            = time.Minute // with Brokers
	warmupRate               = 50          // percent of its maximum
	warmupBacklogRate        = 30000       // its backlog: events per second of Warmup
	defaultSimulatedRate     = 20000       // backlog events per second of simulated time
	maxSimulatedSpan         = 20 * time.Minute
	defaultMemoryCheckpoints = 4
)

// DefaultRates are the fixed rates, in percent of the measured maximum.
var DefaultRates = []float64{25, 50, 75, 90}

// Config describes one `spur bench` run.
type Config struct {
	// Exe is the spur binary run as the engine under test (`Exe run ...`).
	Exe string
	// Brokers are Apache Kafka bootstrap brokers; empty starts an embedded
	// broker in this process.
	Brokers []string
	// Partitions of the topics the bench creates.
	Partitions int32
	// Scenario is throughput, restart or memory.
	Scenario string
	// Warmup, for the throughput scenario, is the length of the phases of
	// an unreported run before the measured one: its own topics, group
	// and engine, its own maximum and the 50 % rate only. A JVM broker
	// compiles its hot paths over its first minutes of traffic; measured
	// cold, it takes CPU the engine would otherwise have (docs/BENCHMARKS.md).
	// 0 means DefaultWarmup with Brokers and none on the embedded broker;
	// negative means none.
	Warmup time.Duration
	// Duration is the length of each measured phase: the max-rate phase is
	// cut there (its rate is then what was applied so far), and each fixed
	// rate runs that long.
	Duration time.Duration
	// Events is the backlog of the max-rate phase; 0 means Duration ×
	// RateEstimate, so the phase lasts about Duration.
	Events int
	// Mature is the events per customer the engine applies, unmeasured,
	// before the max-rate phase: they come first in the backlog, so that
	// the maximum, and the fixed rates taken as percentages of it, are
	// those of customers whose records have filled up, as a live
	// storefront's have. 0 means DefaultMature; negative, none (a fresh
	// store's maximum, as until session 14).
	Mature int
	// RateEstimate is the engine's expected maximum rate, events/s, used to
	// size the backlog.
	RateEstimate float64
	// Rates are the fixed rates in percent of the measured maximum. Once
	// the engine falls behind at one, the higher ones are skipped unless
	// AllRates.
	Rates    []float64
	AllRates bool
	// RateBase, when positive, is the events/s the fixed rates are
	// percentages of, in place of the measured maximum: so that two builds,
	// or two settings, whose maxima differ by run-to-run noise can be
	// compared at the same offered load.
	RateBase float64
	// Customers is the number of distinct customers (throughput: of the
	// generated traffic; restart and memory: of the state loaded).
	Customers int
	// Wait is the cart_abandonment pipeline's wait in the child.
	Wait time.Duration
	// DeadlineGuard keeps a customer's live events this far from their
	// pending deadline (loadgen.Config.DeadlineGuard): an order published a
	// millisecond before a deadline cannot beat a timer that fires by the
	// wall clock, and the check must not depend on that race.
	DeadlineGuard time.Duration
	// Overdue is the number of carts whose wait runs out while the engine is
	// down (restart scenario).
	Overdue int
	// Seed seeds the generated traffic.
	Seed int64
	// PipelinesDir holds the cart_abandonment.yaml to measure; the bench
	// runs the child on a copy with Wait. Empty or missing: a built-in copy.
	PipelinesDir string
	// WorkDir holds the child's data dir and log; empty: a temporary
	// directory, removed afterwards unless Keep.
	WorkDir string
	Keep    bool
	// CacheMB is passed to the child as --cache-mb (0: its default).
	CacheMB int64
	// EngineArgs are more flags for the engine under test (before its
	// `run` command), such as --transactions.
	EngineArgs []string
	// CPUProfile, when set, receives a CPU profile of the child taken
	// during the max-rate phase (from its /debug/pprof/profile), lasting
	// ProfileSeconds; a profile of the bench process over the same seconds
	// goes to BenchProfilePath(CPUProfile).
	CPUProfile     string
	ProfileSeconds int
	// ProfileRate takes the profile in that fixed-rate phase (a percent of
	// Rates) instead of the max-rate phase.
	ProfileRate float64
	// DrainTimeout bounds every wait for the engine to catch up: the wait
	// fails once the engine has made no progress for that long.
	DrainTimeout time.Duration
	// Checkpoints is the number of memory measurements of the memory
	// scenario.
	Checkpoints int
	// JSONFile, when set, also receives the result as JSON.
	JSONFile string
}

// matureEvents is how many events open the backlog to mature the state:
// Mature per customer, none when Mature is negative. The warm-up run sets
// it so after withDefaults (which turns a negative Mature into 0): taken
// as a count, -1 per customer made its measurement start at the first
// sample that had applied anything, which with a small backlog could be
// its last, and "the engine applied nothing" failed TestBenchSmoke.
func (c Config) matureEvents() int { return c.maturePerCustomer() * c.Customers }

// maturePerCustomer is Mature, or 0 when it is negative (matureEvents).
func (c Config) maturePerCustomer() int { return max(c.Mature, 0) }

func (c Config) withDefaults() Config {
	if c.Scenario == "" {
		c.Scenario = ScenarioThroughput
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	switch {
	case c.Scenario != ScenarioThroughput || c.Mature < 0:
		c.Mature = 0
	case c.Mature == 0:
		c.Mature = DefaultMature
	}
	if c.RateEstimate <= 0 {
		c.RateEstimate = DefaultRateEstimate
		if c.Mature > 0 {
			c.RateEstimate = DefaultMatureRateEstimate
		}
	}
	if c.Rates == nil {
		c.Rates = DefaultRates
	}
	if c.Customers <= 0 {
		c.Customers = DefaultCustomers
		if c.Scenario != ScenarioThroughput {
			c.Customers = DefaultStateCustomers
		}
	}
	if c.Wait <= 0 {
		c.Wait = DefaultWait
		if c.Scenario == ScenarioRestart {
			c.Wait = DefaultRestartWait
		}
	}
	if c.DeadlineGuard == 0 {
		c.DeadlineGuard = DefaultDeadlineGuard
	}
	if c.DeadlineGuard < 0 {
		c.DeadlineGuard = 0
	}
	if c.Overdue <= 0 {
		c.Overdue = DefaultOverdue
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.ProfileSeconds <= 0 {
		c.ProfileSeconds = DefaultProfileSeconds
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Checkpoints <= 0 {
		c.Checkpoints = defaultMemoryCheckpoints
	}
	switch {
	case c.Scenario != ScenarioThroughput || c.Warmup < 0:
		c.Warmup = 0
	case c.Warmup == 0 && len(c.Brokers) > 0:
		c.Warmup = DefaultWarmup
	}
	return c
}

// Validate reports whether c, after defaults, describes a run.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Exe == "" {
		errs = append(errs, errors.New("the spur binary to run is required"))
	}
	switch c.Scenario {
	case ScenarioThroughput, ScenarioRestart, ScenarioMemory:
	default:
		errs = append(errs, fmt.Errorf("scenario %q: want throughput, restart or memory", c.Scenario))
	}
	if c.Events < 0 {
		errs = append(errs, fmt.Errorf("events %d: must not be negative", c.Events))
	}
	for _, r := range c.Rates {
		if r <= 0 || r > 100 {
			errs = append(errs, fmt.Errorf("rate %v%%: must be in (0, 100]", r))
		}
	}
	if c.Scenario == ScenarioRestart && c.Overdue > c.Customers {
		errs = append(errs, fmt.Errorf("overdue %d: at most the %d customers", c.Overdue, c.Customers))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
