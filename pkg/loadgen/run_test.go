package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestRunPaces(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clock := clockwork.NewFakeClockAt(t0)
	g := mustNew(t, Config{Seed: 1, Customers: 1000})
	var n atomic.Int64
	var lastTS atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- g.Run(ctx, clock, 1000, func(r Record) error {
			n.Add(1)
			lastTS.Store(r.TS.UnixNano())
			return nil
		})
	}()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the ticker
		t.Fatal(err)
	}
	wait := func(want int64) {
		t.Helper()
		for n.Load() < want {
			if ctx.Err() != nil {
				t.Fatalf("emitted %d, want %d", n.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond) // would catch an overshoot
		if got := n.Load(); got != want {
			t.Fatalf("emitted %d, want %d", got, want)
		}
	}
	for range 50 {
		clock.Advance(RunTick)
	}
	wait(500) // 1000/s for 0.5 s
	if got := time.Unix(0, lastTS.Load()); !got.Equal(t0.Add(500 * time.Millisecond)) {
		t.Fatalf("last ts %v", got)
	}
	// A stall longer than a second is skipped, not replayed as a burst.
	clock.Advance(5 * time.Second)
	wait(1501)

	// Records are read while Run feeds the oracle: safe under -race.
	_ = g.Oracle().Expected(clock.Now())

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestRunStopsOnSinkError(t *testing.T) {
	boom := errors.New("boom")
	clock := clockwork.NewFakeClockAt(t0)
	for _, rate := range []float64{0, 100} {
		g := mustNew(t, Config{Seed: 1})
		done := make(chan error, 1)
		n := 0
		go func() {
			done <- g.Run(context.Background(), clock, rate, func(Record) error {
				if n++; n == 3 {
					return boom
				}
				return nil
			})
		}()
		if rate > 0 {
			if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second)
		}
		if err := <-done; !errors.Is(err, boom) {
			t.Fatalf("rate %v: Run returned %v", rate, err)
		}
	}
}

func TestRunFullSpeedStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := mustNew(t, Config{Seed: 1})
	n := 0
	err := g.Run(ctx, clockwork.NewRealClock(), 0, func(Record) error {
		if n++; n == 1000 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n < 1000 || n > 1000+256 {
		t.Fatalf("Run returned %v after %d records", err, n)
	}
}
