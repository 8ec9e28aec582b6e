package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Result is what a scenario reports: a human table and a JSON object.
type Result interface {
	// WriteTable writes the human table.
	WriteTable(w io.Writer)
}

// Run runs cfg's scenario. It reports progress and diagnostics on stderr and
// the result on stdout: a table, or with asJSON one JSON object (also
// written to cfg.JSONFile when set).
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer, asJSON bool) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	var warm *Warmup
	if cfg.Warmup > 0 {
		var err error
		if warm, err = warmUp(ctx, cfg, stderr); err != nil {
			return fmt.Errorf("bench: warm-up run: %w", err)
		}
	}
	r, err := newRunner(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	var res Result
	// A nil *XResult must become a nil Result.
	switch cfg.Scenario {
	case ScenarioThroughput:
		if t, terr := r.throughput(ctx); t != nil {
			t.Warmup = warm
			res, err = t, terr
		} else {
			err = terr
		}
	case ScenarioRestart:
		if t, terr := r.restart(ctx); t != nil {
			res, err = t, terr
		} else {
			err = terr
		}
	case ScenarioMemory:
		if t, terr := r.memory(ctx); t != nil {
			res, err = t, terr
		} else {
			err = terr
		}
	}
	r.close(err)
	if res == nil {
		return err
	}
	js, jerr := json.MarshalIndent(res, "", "  ")
	if jerr != nil {
		return errors.Join(err, jerr)
	}
	js = append(js, '\n')
	if cfg.JSONFile != "" {
		if werr := os.WriteFile(cfg.JSONFile, js, 0o644); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if asJSON {
		if _, werr := stdout.Write(js); werr != nil {
			err = errors.Join(err, werr)
		}
	} else {
		res.WriteTable(stdout)
	}
	return err
}

// runner holds what every scenario shares: the broker, the work directory,
// the progress line.
type runner struct {
	cfg     Config
	stderr  io.Writer
	prog    *progress
	cl      *cluster
	work    string
	tmpWork bool
	mach    Machine
	started time.Time
	nchild  int
}

func newRunner(ctx context.Context, cfg Config, stderr io.Writer) (*runner, error) {
	r := &runner{cfg: cfg, stderr: stderr, mach: machine(), started: time.Now()}
	r.work = cfg.WorkDir
	if r.work == "" {
		d, err := os.MkdirTemp("", "spur-bench-")
		if err != nil {
			return nil, err
		}
		r.work, r.tmpWork = d, true
	} else if err := os.MkdirAll(r.work, 0o755); err != nil {
		return nil, err
	}
	r.prog = newProgress(stderr)
	r.prog.set("broker", nil)
	cl, err := openCluster(ctx, cfg.Brokers, cfg.Partitions)
	if err != nil {
		r.close(err)
		return nil, err
	}
	r.cl = cl
	r.prog.logf("%s; %s; work dir %s", cl.describe(), r.mach, r.work)
	if err := writePipeline(cfg.PipelinesDir, r.pipelines(), cfg.Wait); err != nil {
		r.close(err)
		return nil, err
	}
	return r, nil
}

func (r *runner) pipelines() string { return filepath.Join(r.work, "pipelines") }

func (r *runner) dataDir() string { return filepath.Join(r.work, "engine") }

// spec returns how to start the engine under test; every start appends to
// one log file.
func (r *runner) spec(group string) childSpec {
	return childSpec{
		exe: r.cfg.Exe, brokers: r.cl.brokers, group: group, dataDir: r.dataDir(),
		pipelines: r.pipelines(), topics: r.cl.topics, cacheMB: r.cfg.CacheMB, extra: r.cfg.EngineArgs,
		logPath: filepath.Join(r.work, "engine.log"),
	}
}

// group is the engine's consumer group name in this run.
func (r *runner) group() string { return "spurbench-" + r.cl.runID }

func (r *runner) close(err error) {
	r.prog.close()
	r.mach.LoadEnd = loadavg()
	if r.cl != nil {
		r.cl.deleteGroup(r.group())
		r.cl.deleteGroup(r.group() + "-ceiling")
		r.cl.close()
	}
	switch {
	case r.tmpWork && !r.cfg.Keep && err == nil:
		os.RemoveAll(r.work)
	case err != nil || r.cfg.Keep:
		fmt.Fprintf(r.stderr, "bench: work dir kept: %s (engine log: %s)\n", r.work, filepath.Join(r.work, "engine.log"))
	}
}

// waitFor polls cond every step until it holds, the child dies, or timeout.
func (r *runner) waitFor(ctx context.Context, what string, c *child, timeout, step time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if c != nil {
			if err := c.alive(); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
	}
	return nil
}

// waitProgress waits until done holds for the child's latest sample. It
// fails when the child dies, ctx ends, or the child makes no progress (no
// applied event, fired timer or acknowledged output) for stall.
func (r *runner) waitProgress(ctx context.Context, what string, c *child, mon *monitor, stall time.Duration, done func(sample) bool) error {
	var last sample
	lastChange := time.Now()
	for {
		s, ok := mon.scrapeOnce()
		if ok {
			if done(s) {
				return nil
			}
			if s.consumed != last.consumed || s.timers != last.timers || s.outbox != last.outbox || s.m[mTriggers] != last.m[mTriggers] {
				last, lastChange = s, time.Now()
			}
		}
		if err := c.alive(); err != nil {
			return err
		}
		if time.Since(lastChange) > stall {
			return fmt.Errorf("bench: no progress for %v waiting for %s", stall, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
