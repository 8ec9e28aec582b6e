package engine

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestInputQueue: records come out in the order they went in, however
// pushes and pops interleave; a taken record is not kept alive by the
// queue's array; and a queue that is drained and refilled, or kept a few
// records deep, reuses its array instead of growing it.
func TestInputQueue(t *testing.T) {
	var q inputQueue
	recs := make([]*kgo.Record, 5000)
	for i := range recs {
		recs[i] = &kgo.Record{Offset: int64(i)}
	}
	in, out := 0, 0
	for round := range 500 {
		for range round%7 + 1 {
			q.push(fetched{rec: recs[in], fetch: uint64(in)})
			in++
		}
		for range round%5 + 1 {
			if q.len() == 0 {
				break
			}
			if got := q.front().rec; got != recs[out] {
				t.Fatalf("front is record %d, want %d", got.Offset, out)
			}
			if f := q.pop(); f.rec != recs[out] || f.fetch != uint64(out) {
				t.Fatalf("popped record %d, want %d", f.rec.Offset, out)
			}
			out++
		}
		if q.len() != in-out {
			t.Fatalf("len %d, want %d", q.len(), in-out)
		}
		for i := range q.buf[:q.head] {
			if q.buf[i].rec != nil {
				t.Fatalf("slot %d still refers to a taken record", i)
			}
		}
	}
	for q.len() > 0 {
		if f := q.pop(); f.rec != recs[out] {
			t.Fatalf("popped record %d, want %d", f.rec.Offset, out)
		}
		out++
	}
	if out != in {
		t.Fatalf("took %d records of %d", out, in)
	}
	// Kept a few records deep, never drained, it must not grow its array
	// (the rounds above grew it for a deeper backlog).
	steady := cap(q.buf)
	for i := range 100000 {
		q.push(fetched{rec: recs[i%len(recs)]})
		if q.len() > 3 {
			q.pop()
		}
	}
	if cap(q.buf) != steady {
		t.Errorf("a queue kept 3 deep grew its array from %d to %d", steady, cap(q.buf))
	}
}
