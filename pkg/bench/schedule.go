package bench

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/loadgen"
)

// A schedule is a fixed-rate phase's traffic, generated before the phase
// begins: event i is due at start + i/rate and its event time is that
// moment. Generating while sending took about a quarter of the bench's CPU
// in a 75 % phase (a profile of the bench process: loadgen's Next 0.12 of
// its 0.56 cores), on the machine the engine under test shares; sending
// prepared records leaves that time to the engine. The records live in
// large byte chunks and an index without pointers, so however many there
// are they give the bench's collector nothing to scan.
type schedule struct {
	start  time.Time
	rate   float64
	topics []string
	chunks [][]byte
	recs   []schedRec
}

type schedRec struct {
	ts             int64 // event time, unix ns
	off            uint32
	keyLen, valLen uint32
	chunk          uint16
	topic          uint8
}

// scheduleChunk is the size of a schedule's byte chunks.
const scheduleChunk = 64 << 20

// Generating a schedule took 1.2–2.7 µs per event here (675,000 events in
// 0.8–1.8 s, session 13); the phase is planned to start once it is
// generated at 3 µs per event, and half a second later (the engine idles
// meanwhile, as between phases). A schedule ready late is reported, and its
// first events go out late, which their latency then includes.
const (
	scheduleGenCost = 3 * time.Microsecond
	scheduleMargin  = 500 * time.Millisecond
)

// newSchedule generates rate × d events from gen, due from a start far
// enough ahead for the generation to finish first.
func newSchedule(ctx context.Context, gen *loadgen.Generator, rate float64, d time.Duration) (*schedule, error) {
	n := int(rate * d.Seconds())
	start := time.Now().Add(time.Duration(n)*scheduleGenCost + scheduleMargin)
	return generate(ctx, gen, start, rate, n, scheduleChunk)
}

// generate makes a schedule of n events from start, in chunks of
// chunkSize bytes.
func generate(ctx context.Context, gen *loadgen.Generator, start time.Time, rate float64, n, chunkSize int) (*schedule, error) {
	s := &schedule{start: start, rate: rate, recs: make([]schedRec, 0, n)}
	var chunk []byte
	for i := range n {
		if i&1023 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rec := gen.Next(s.due(i))
		size := len(rec.Key) + len(rec.Value)
		if len(chunk)+size > cap(chunk) {
			if len(s.chunks) == math.MaxUint16 {
				return nil, fmt.Errorf("bench: a schedule of %d events does not fit in %d chunks", n, len(s.chunks))
			}
			chunk = make([]byte, 0, max(chunkSize, size))
			s.chunks = append(s.chunks, chunk)
		}
		off := len(chunk)
		chunk = append(append(chunk, rec.Key...), rec.Value...)
		s.chunks[len(s.chunks)-1] = chunk
		s.recs = append(s.recs, schedRec{ts: rec.TS.UnixNano(), off: uint32(off), chunk: uint16(len(s.chunks) - 1),
			topic: s.topicIndex(rec.Topic), keyLen: uint32(len(rec.Key)), valLen: uint32(len(rec.Value))})
	}
	return s, nil
}

// due is the moment event i is due (and its event time).
func (s *schedule) due(i int) time.Time {
	return s.start.Add(time.Duration(math.Round(float64(i) * float64(time.Second) / s.rate)))
}

func (s *schedule) topicIndex(t string) uint8 {
	for i, x := range s.topics {
		if x == t {
			return uint8(i)
		}
	}
	s.topics = append(s.topics, t)
	return uint8(len(s.topics) - 1)
}

// record is event i as a record to produce; its key and value share the
// schedule's memory.
func (s *schedule) record(i int) *kgo.Record {
	r := s.recs[i]
	b := s.chunks[r.chunk][r.off:]
	k := int(r.keyLen)
	return &kgo.Record{Topic: s.topics[r.topic], Key: b[:k:k], Value: b[k : k+int(r.valLen) : k+int(r.valLen)],
		Timestamp: time.Unix(0, r.ts)}
}

// waitStart sleeps until the schedule's start.
func (s *schedule) waitStart(ctx context.Context) error {
	t := time.NewTimer(time.Until(s.start))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// send produces the schedule's records, each once it is due, and returns
// the last event time. Every tick it produces whatever has come due; when
// production cannot keep up the offered rate falls short, which the caller
// reports.
func (s *schedule) send(ctx context.Context, cl *kgo.Client, sent *atomic.Int64, promise func(*kgo.Record, error)) (time.Time, error) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	i := 0
	for i < len(s.recs) {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-tick.C:
		}
		due := min(len(s.recs), int(s.rate*time.Since(s.start).Seconds())+1)
		for ; i < due; i++ {
			cl.Produce(ctx, s.record(i), promise)
			sent.Add(1)
		}
	}
	if len(s.recs) == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, s.recs[len(s.recs)-1].ts), nil
}
