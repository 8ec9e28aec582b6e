package loadgen

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
)

// RunTick is the pacing interval of Run.
const RunTick = 10 * time.Millisecond

// Run emits records to sink at rate records per second of clock time, each
// with TS = the clock's time, until ctx is done (it then returns ctx.Err()) or
// sink fails (it returns that error). It is what `spur dev --demo` uses.
//
// Every RunTick it emits however many records bring the total to rate ×
// elapsed time, so ticks a slow sink made it miss are caught up, but by at
// most one second's worth: a longer stall is skipped, not replayed as a
// burst. A rate <= 0 means as fast as possible, with TS = clock.Now() for
// each record.
//
// Run drives the Generator, so nothing else may call Next meanwhile; the
// Oracle may be read concurrently.
func (g *Generator) Run(ctx context.Context, clock clockwork.Clock, rate float64, sink func(Record) error) error {
	if rate <= 0 {
		for {
			for range 256 {
				if err := sink(g.Next(clock.Now())); err != nil {
					return err
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	ticker := clock.NewTicker(RunTick)
	defer ticker.Stop()
	start := clock.Now()
	var emitted int64
	maxDebt := int64(rate) + 1
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.Chan():
		}
		now := clock.Now()
		due := int64(rate * now.Sub(start).Seconds())
		if due-emitted > maxDebt {
			emitted = due - maxDebt
		}
		for ; emitted < due; emitted++ {
			if err := sink(g.Next(now)); err != nil {
				return err
			}
		}
	}
}
