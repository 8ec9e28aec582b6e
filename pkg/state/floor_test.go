package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// BenchmarkPebbleFloor measures what Pebble alone costs per event the way
// spur uses it, with none of spur's work: a read of the customer's record
// and a rewrite of it (a mature customer's record, distinct per customer),
// 2,500 events to a synced batch (a step at the engine's maximum rate),
// 100,000 customers picked at random, on disk. It reports the process's CPU
// per event, Pebble's background flushes and compactions included
// (cpu-µs/event): the floor under the engine's CPU per event, to set
// against what half the ceiling's rate leaves (`spur bench` prints both).
//
// "write" rewrites the record without reading it, as when the customer
// cache holds it (most events at the maximum rate); "read-write" reads it
// from Pebble first, as for a customer the cache does not hold.
func BenchmarkPebbleFloor(b *testing.B) {
	b.Run("write", func(b *testing.B) { benchPebbleFloor(b, false) })
	b.Run("read-write", func(b *testing.B) { benchPebbleFloor(b, true) })
}

func benchPebbleFloor(b *testing.B, read bool) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	const (
		customers = 100_000
		step      = 2_500
	)
	keys := make([][]byte, customers)
	recs := make([][]byte, customers)
	batch := db.NewBatch()
	for i := range customers {
		c := benchCustomer()
		for j := range c.Recent {
			c.Recent[j].EventID = fmt.Sprintf("evt-%07d-%05d", i, j)
		}
		recs[i] = c.AppendBinary(nil)
		keys[i] = Key(0, KindCustomer, fmt.Appendf(nil, "customer-%07d", i))
		if err := batch.Set(keys[i], recs[i], nil); err != nil {
			b.Fatal(err)
		}
		if batch.Len() > 16<<20 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				b.Fatal(err)
			}
			batch = db.NewBatch()
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		b.Fatal(err)
	}
	// The loading's flushes and compactions done before the clock starts.
	lo, hi := Bounds(0, KindCustomer)
	if err := db.Compact(context.Background(), lo, hi, true); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, 0, 4096)
	cpu0 := processCPU(b)
	batch = db.NewBatch()
	n := 0
	for b.Loop() {
		i := rng.IntN(customers)
		val = append(val[:0], recs[i]...)
		if read {
			v, closer, err := db.Get(keys[i])
			if err != nil {
				b.Fatal(err)
			}
			val = append(val[:0], v...)
			closer.Close()
		}
		// The event changes the record: its count, at the end.
		n++
		val = binary.BigEndian.AppendUint64(val[:len(recs[i])], uint64(n))
		if err := batch.Set(keys[i], val, nil); err != nil {
			b.Fatal(err)
		}
		if n%step == 0 {
			if err := batch.Commit(pebble.Sync); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(n)/1e3, "cpu-µs/event")
	b.ReportMetric(float64(len(recs[0])), "B/record")
}

// processCPU is the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
