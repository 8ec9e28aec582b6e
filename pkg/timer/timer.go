package timer

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/spur-crm/spur/pkg/state"
)

// Timer is one durable timer.
type Timer struct {
	Deadline time.Time
	// ID identifies the timer within its deadline, typically rule and subject.
	ID string
	// Payload is opaque to this package.
	Payload []byte
}

// deadlines are stored as unix milliseconds shifted to an unsigned range so
// that byte order equals time order, negative times included.
func encodeDeadline(t time.Time) uint64 { return uint64(t.UnixMilli()) ^ (1 << 63) }
func decodeDeadline(u uint64) time.Time { return time.UnixMilli(int64(u ^ (1 << 63))).UTC() }

// Key returns the row key of a timer.
func Key(part int32, deadline time.Time, id string) []byte {
	rest := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(rest, encodeDeadline(deadline))
	rest = append(rest, id...)
	return state.Key(part, state.KindTimer, rest)
}

// Schedule writes a timer row into b.
func Schedule(b *pebble.Batch, part int32, t Timer) error {
	return b.Set(Key(part, t.Deadline, t.ID), t.Payload, nil)
}

// Cancel deletes a timer row in b. Deleting a timer that does not exist is
// not an error.
func Cancel(b *pebble.Batch, part int32, deadline time.Time, id string) error {
	return b.Delete(Key(part, deadline, id), nil)
}

// Never is the deadline Scan reports when a partition has no timer at or
// after from: later than any deadline a timer can hold.
var Never = decodeDeadline(math.MaxUint64)

// Scan returns up to limit timers of a partition whose deadline is at or
// before now, earliest first, and the deadline of the first timer after
// them (Never when there is none). It reads from the deadline from on: the
// caller knows no timer is earlier (zero: from the first). Starting there
// rather than at the partition's first key skips the deletion tombstones
// that fired and cancelled timers leave behind until compactions drop them;
// a scan from the start wades through all of them, every step.
func Scan(r pebble.Reader, part int32, from, now time.Time, limit int) (due []Timer, next time.Time, err error) {
	lo, hi := state.Bounds(part, state.KindTimer)
	if !from.IsZero() {
		lo = Key(part, from, "")
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, time.Time{}, err
	}
	defer it.Close()
	next = Never
	for valid := it.First(); valid; valid = it.Next() {
		rest := state.KeyRest(it.Key())
		if len(rest) < 8 {
			return nil, time.Time{}, fmt.Errorf("timer: corrupt key %q", it.Key())
		}
		d := decodeDeadline(binary.BigEndian.Uint64(rest))
		if d.After(now) || len(due) >= limit {
			next = d
			break
		}
		t, err := parse(it.Key(), it.Value())
		if err != nil {
			return nil, time.Time{}, err
		}
		due = append(due, t)
	}
	return due, next, it.Error()
}

// Count returns the number of a partition's timers.
func Count(r pebble.Reader, part int32) (int, error) {
	lo, hi := state.Bounds(part, state.KindTimer)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n, it.Error()
}

func parse(key, value []byte) (Timer, error) {
	rest := state.KeyRest(key)
	if len(rest) < 8 {
		return Timer{}, fmt.Errorf("timer: corrupt key %q", key)
	}
	return Timer{
		Deadline: decodeDeadline(binary.BigEndian.Uint64(rest)),
		ID:       string(rest[8:]),
		Payload:  append([]byte(nil), value...),
	}, nil
}

// Wait returns how long to sleep until deadline, clamped to [0, max].
func Wait(now, deadline time.Time, max time.Duration) time.Duration {
	d := deadline.Sub(now)
	if d < 0 {
		return 0
	}
	if d > max {
		return max
	}
	return d
}
