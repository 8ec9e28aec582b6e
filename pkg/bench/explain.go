package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// explain prints, for a few customers whose trigger differs from the
// oracle, their input records around the qualifying moment (by record
// timestamp) as the broker holds them, so that the difference can be traced
// to an event the engine applied in another order or too late.
func (r *runner) explain(ctx context.Context, ck checkResult, w io.Writer, examples int) {
	around := map[string]time.Time{}
	for _, s := range ck.extra {
		if len(around) == examples {
			break
		}
		if _, ok := around[s.customer]; !ok {
			around[s.customer] = s.qualifiedAt
		}
	}
	for _, m := range ck.missing {
		if len(around) == 2*examples {
			break
		}
		if _, ok := around[m.CustomerID]; !ok {
			around[m.CustomerID] = m.QualifiedAt
		}
	}
	if len(around) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ends, err := r.cl.endOffsets(ctx, r.cl.topics.inputs()...)
	if err != nil {
		fmt.Fprintf(w, "bench: explain: %v\n", err)
		return
	}
	parts := map[string]map[int32]kgo.Offset{}
	remaining := 0
	for t, ps := range ends {
		parts[t] = map[int32]kgo.Offset{}
		for p, end := range ps {
			if end > 0 {
				parts[t][p] = kgo.NewOffset().AtStart()
				remaining++
			}
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.cl.brokers...), kgo.ConsumePartitions(parts), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(64<<20))
	if err != nil {
		fmt.Fprintf(w, "bench: explain: %v\n", err)
		return
	}
	defer cl.Close()
	type line struct {
		ts   time.Time
		text string
	}
	found := map[string][]line{}
	done := map[string]bool{}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fmt.Fprintf(w, "bench: explain: %v\n", ctx.Err())
			break
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if q, ok := around[string(rec.Key)]; ok {
				lo, hi := q.Add(-r.cfg.Wait-3*time.Second), q.Add(3*time.Second)
				if !rec.Timestamp.Before(lo) && rec.Timestamp.Before(hi) {
					found[string(rec.Key)] = append(found[string(rec.Key)], line{rec.Timestamp,
						fmt.Sprintf("  %s/%d@%d ts=%s %s", rec.Topic, rec.Partition, rec.Offset, rec.Timestamp.UTC().Format("15:04:05.000"), rec.Value)})
				}
			}
			k := rec.Topic + "/" + fmt.Sprint(rec.Partition)
			if !done[k] && rec.Offset+1 >= ends[rec.Topic][rec.Partition] {
				done[k] = true
				remaining--
			}
		})
	}
	for c, q := range around {
		fmt.Fprintf(w, "bench: input of %s around its qualifying moment %s (wait %v):\n", c, q.UTC().Format("15:04:05.000"), r.cfg.Wait)
		ls := found[c]
		slices.SortStableFunc(ls, func(a, b line) int { return a.ts.Compare(b.ts) })
		for _, l := range ls {
			fmt.Fprintln(w, l.text)
		}
	}
}
