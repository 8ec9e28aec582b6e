package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spur-crm/spur/pkg/bench"
	"github.com/spur-crm/spur/pkg/config"
)

// BenchCmd measures spur: see pkg/bench and docs/BENCHMARKS.md.
type BenchCmd struct {
	Brokers        string        `name:"brokers" help:"Apache Kafka bootstrap brokers (host:port,...); default: an embedded broker in this process. Topics are created per run and deleted afterwards."`
	Scenario       string        `name:"scenario" default:"throughput" enum:"throughput,restart,memory" help:"throughput: ceiling, max rate, fixed rates, latency, oracle check; restart: recovery after kill -9 and overdue timers; memory: RSS and disk against customers."`
	Warmup         string        `name:"warmup" default:"auto" help:"throughput: length of the phases of an unreported run before the measured one, on topics of its own, so that a JVM broker has compiled its hot paths (auto: 1m with --brokers, none on the embedded broker; 0: none)."`
	Duration       time.Duration `name:"duration" default:"30s" help:"Length of each measured phase (the max-rate phase and each fixed rate)."`
	Events         int           `name:"events" help:"Backlog events for the max-rate phase (default: --duration × --rate-estimate)."`
	Mature         int           `name:"mature" default:"20" help:"throughput: events per customer the engine applies, unmeasured, before the max-rate phase, so that the maximum and the fixed rates are those of customers with full records, not of a fresh store (0: none)."`
	RateEstimate   float64       `name:"rate-estimate" help:"Expected engine events/s, to size the backlog so that the max-rate phase lasts --duration (default: 60000; 150000 with --mature 0)."`
	Rates          []float64     `name:"rates" default:"25,50,75,90" sep:"," help:"Fixed rates, in percent of the measured maximum (or of --rate-base)."`
	RateBase       float64       `name:"rate-base" help:"Events/s the fixed rates are percentages of (default: the measured maximum), to compare builds or settings at the same offered load."`
	AllRates       bool          `name:"all-rates" help:"Run every fixed rate even after the engine fell behind at a lower one (each then starts caught up)."`
	Customers      int           `name:"customers" help:"Distinct customers (default: throughput 100000; restart and memory 1000000)."`
	Wait           time.Duration `name:"wait" help:"The cart_abandonment wait the engine runs with (default: 2s; restart 10s)."`
	DeadlineGuard  time.Duration `name:"deadline-guard" default:"1s" help:"Live traffic keeps a customer's events this far from their pending deadline, so the oracle check does not depend on an order racing a timer (0: none)."`
	Overdue        int           `name:"overdue" default:"10000" help:"restart: carts whose wait runs out while the engine is down."`
	Checkpoints    int           `name:"checkpoints" default:"4" help:"memory: measurements along the load."`
	Seed           int64         `name:"seed" default:"1" help:"Seed of the generated traffic."`
	WorkDir        string        `name:"work-dir" help:"Directory of the engine's data and log (default: a temporary directory, removed after a successful run)."`
	Keep           bool          `name:"keep" help:"Keep the work directory."`
	JSON           bool          `name:"json" help:"Print one JSON object on stdout instead of the table."`
	JSONFile       string        `name:"json-file" help:"Also write the JSON result to this file."`
	CPUProfile     string        `name:"cpuprofile" help:"Write a CPU profile of the engine, taken during the max-rate phase, to this file, and one of the bench process (load generator, embedded broker) beside it (f.pprof: f.bench.pprof)."`
	ProfileSeconds int           `name:"profile-seconds" default:"10" help:"Length of the CPU profile."`
	ProfileRate    float64       `name:"profile-rate" help:"Take the CPU profile in this fixed-rate phase (e.g. 75) instead of the max-rate phase."`
	DrainTimeout   time.Duration `name:"drain-timeout" default:"2m" help:"Give up waiting for the engine to catch up after it made no progress for this long."`
	EngineArgs     []string      `name:"engine-arg" help:"A flag passed to the engine under test (repeat for several), e.g. --engine-arg=--transactions or --engine-arg=--no-changelog. The engine also gets the storage settings given to bench itself (--cache-mb, --memory-limit-mb, --customer-cache-mb, --pebble-*); these come after them and win."`
}

// Run runs the benchmark until it ends or SIGINT/SIGTERM.
func (c *BenchCmd) Run(cfg *config.Config) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: the spur binary: %w", err)
	}
	warmup, err := parseWarmup(c.Warmup)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = bench.Run(ctx, bench.Config{
		Exe:            exe,
		Brokers:        config.SplitBrokers(c.Brokers),
		Partitions:     cfg.Partitions,
		Scenario:       c.Scenario,
		Duration:       c.Duration,
		Warmup:         warmup,
		Events:         c.Events,
		Mature:         noneIfZero(c.Mature),
		RateEstimate:   c.RateEstimate,
		Rates:          c.Rates,
		AllRates:       c.AllRates,
		RateBase:       c.RateBase,
		Customers:      c.Customers,
		Wait:           c.Wait,
		DeadlineGuard:  noneIfZero(c.DeadlineGuard),
		Overdue:        c.Overdue,
		Checkpoints:    c.Checkpoints,
		Seed:           c.Seed,
		PipelinesDir:   cfg.Pipelines,
		WorkDir:        c.WorkDir,
		Keep:           c.Keep,
		CacheMB:        cfg.CacheMB,
		EngineArgs:     c.engineArgs(cfg),
		CPUProfile:     c.CPUProfile,
		ProfileSeconds: c.ProfileSeconds,
		ProfileRate:    c.ProfileRate,
		DrainTimeout:   c.DrainTimeout,
		JSONFile:       c.JSONFile,
	}, os.Stdout, os.Stderr, c.JSON)
	if errors.Is(err, context.Canceled) {
		return errors.New("bench: interrupted")
	}
	return err
}

// parseWarmup reads --warmup: "auto" is bench.Config's zero (its
// default), a zero duration is none (noneIfZero).
func parseWarmup(s string) (time.Duration, error) {
	if s == "auto" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("bench: --warmup %q: want auto or a duration", s)
	case d < 0:
		return 0, fmt.Errorf("bench: --warmup %v: must not be negative", d)
	}
	return noneIfZero(d), nil
}

// noneIfZero maps a flag's 0, which asks for none, to bench.Config's
// negative "none" (its 0 is "the default").
func noneIfZero[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// engineArgs are the flags of the engine under test: the bench's engine
// settings (engineTuning), then --engine-arg.
func (c *BenchCmd) engineArgs(cfg *config.Config) []string {
	return append(engineTuning(cfg), c.EngineArgs...)
}

// engineTuning passes the engine settings of the bench's own command line
// (flags before `bench`, the config file, SPUR_* variables) on to the
// engine under test, which would see none of them otherwise: it gets its
// own flags, and an environment without SPUR_*. --engine-arg flags come
// after them and win. (--cache-mb is passed by the bench itself.)
func engineTuning(cfg *config.Config) []string {
	return []string{
		"--memory-limit-mb", strconv.FormatInt(cfg.MemoryLimitMB, 10),
		"--pebble-memtable-mb", strconv.Itoa(cfg.PebbleMemTableMB),
		"--pebble-l0-compaction", strconv.Itoa(cfg.PebbleL0Compact),
		"--pebble-l0-stop-writes", strconv.Itoa(cfg.PebbleL0Stop),
		"--pebble-compactions", strconv.Itoa(cfg.PebbleCompactions),
		"--pebble-bloom-bits", strconv.Itoa(cfg.PebbleBloomBits),
		"--pebble-compression", cfg.PebbleCompression,
		"--customer-cache-mb", strconv.Itoa(cfg.CustomerCacheMB),
	}
}
