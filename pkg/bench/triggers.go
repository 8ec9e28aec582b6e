package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/loadgen"
)

// seenTrigger is what the bench keeps of one output record.
type seenTrigger struct {
	id          string
	rule        string
	customer    string
	cause       string // the first cause event id
	causes      int
	qualifiedAt time.Time
	emittedAt   time.Time
	appendedAt  time.Time // the record timestamp
}

// triggerReader reads the triggers topic from its start for the whole run.
type triggerReader struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	recs      []seenTrigger // distinct by trigger_id, in read order
	byID      map[string]bool
	dups      int
	bad       int // unreadable records
	next      map[int32]int64
	tsTypes   map[string]int
	firstSeen time.Time // wall clock of the first record read
}

type triggerJSON struct {
	TriggerID     string    `json:"trigger_id"`
	Rule          string    `json:"rule"`
	CustomerID    string    `json:"customer_id"`
	QualifiedAt   time.Time `json:"qualified_at"`
	EmittedAt     time.Time `json:"emitted_at"`
	CauseEventIDs []string  `json:"cause_event_ids"`
}

func startTriggerReader(brokers []string, topic string) (*triggerReader, error) {
	// read_committed, as a marketing system reads; control records (the
	// markers of an engine run with --transactions) are kept so that the
	// reader knows it has passed the last offset.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &triggerReader{cl: cl, cancel: cancel, done: make(chan struct{}),
		byID: map[string]bool{}, next: map[int32]int64{}, tsTypes: map[string]int{}}
	go r.run(ctx)
	return r, nil
}

func (r *triggerReader) run(ctx context.Context) {
	defer close(r.done)
	for {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		r.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) {
			r.next[rec.Partition] = rec.Offset + 1
			if rec.Attrs.IsControl() {
				return
			}
			if r.firstSeen.IsZero() {
				r.firstSeen = time.Now()
			}
			if rec.Attrs.TimestampType() == 1 {
				r.tsTypes["LogAppendTime"]++
			} else {
				r.tsTypes["CreateTime"]++
			}
			var t triggerJSON
			if err := json.Unmarshal(rec.Value, &t); err != nil || t.TriggerID == "" {
				r.bad++
				return
			}
			if r.byID[t.TriggerID] {
				r.dups++
				return
			}
			r.byID[t.TriggerID] = true
			s := seenTrigger{id: t.TriggerID, rule: t.Rule, customer: t.CustomerID, causes: len(t.CauseEventIDs),
				qualifiedAt: t.QualifiedAt, emittedAt: t.EmittedAt, appendedAt: rec.Timestamp}
			if len(t.CauseEventIDs) > 0 {
				s.cause = t.CauseEventIDs[0]
			}
			r.recs = append(r.recs, s)
		})
		r.mu.Unlock()
	}
}

// count returns the distinct triggers read so far.
func (r *triggerReader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// countCause returns the distinct triggers read so far whose cause event id
// starts with prefix.
func (r *triggerReader) countCause(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.recs {
		if strings.HasPrefix(s.cause, prefix) {
			n++
		}
	}
	return n
}

// caughtUp reports whether the reader has read up to ends.
func (r *triggerReader) caughtUp(ends map[int32]int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, end := range ends {
		if end > 0 && r.next[p] < end {
			return false
		}
	}
	return true
}

// snapshot returns what was read, in read order.
func (r *triggerReader) snapshot() (recs []seenTrigger, dups, bad int, tsType string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	recs = slices.Clone(r.recs)
	switch {
	case r.tsTypes["LogAppendTime"] > 0 && r.tsTypes["CreateTime"] > 0:
		tsType = "mixed"
	case r.tsTypes["LogAppendTime"] > 0:
		tsType = "LogAppendTime"
	case r.tsTypes["CreateTime"] > 0:
		tsType = "CreateTime"
	}
	return recs, r.dups, r.bad, tsType
}

func (r *triggerReader) close() {
	r.cancel()
	r.cl.Close()
	<-r.done
}

// checkResult compares the output with the oracle.
type checkResult struct {
	Expected, Seen, Missing, Unexpected, Duplicates, Unreadable int

	extra   []seenTrigger
	missing []loadgen.Expected
}

type tkey struct {
	rule, customer, cause string
	qualified             int64 // unix ms
}

// check compares seen triggers with the oracle's expectation and writes up
// to examples of each kind of difference to diag.
func check(want []loadgen.Expected, seen []seenTrigger, dups, bad int, diag io.Writer, examples int) checkResult {
	res := checkResult{Expected: len(want), Seen: len(seen), Duplicates: dups, Unreadable: bad}
	wantN := map[tkey]int{}
	for _, w := range want {
		wantN[tkey{w.Rule, w.CustomerID, w.CauseEventID, w.QualifiedAt.UnixMilli()}]++
	}
	seenN := map[tkey]int{}
	var extra []seenTrigger
	for _, s := range seen {
		k := tkey{s.rule, s.customer, s.cause, s.qualifiedAt.UnixMilli()}
		seenN[k]++
		if s.causes != 1 || seenN[k] > wantN[k] {
			res.Unexpected++
			extra = append(extra, s)
		}
	}
	var missing []loadgen.Expected
	for _, w := range want {
		k := tkey{w.Rule, w.CustomerID, w.CauseEventID, w.QualifiedAt.UnixMilli()}
		if seenN[k] < wantN[k] {
			seenN[k]++ // count each expected copy once
			res.Missing++
			missing = append(missing, w)
		}
	}
	res.extra, res.missing = extra, missing
	if diag != nil {
		slices.SortFunc(extra, func(a, b seenTrigger) int {
			return cmp.Or(cmp.Compare(a.customer, b.customer), a.qualifiedAt.Compare(b.qualifiedAt))
		})
		for i, s := range extra {
			if i == examples {
				fmt.Fprintf(diag, "bench: … and %d more unexpected\n", len(extra)-examples)
				break
			}
			fmt.Fprintf(diag, "bench: unexpected trigger: rule=%s customer=%s qualified_at=%s cause=%s (causes %d) emitted_at=%s id=%s\n",
				s.rule, s.customer, s.qualifiedAt.Format(time.RFC3339Nano), s.cause, s.causes, s.emittedAt.Format(time.RFC3339Nano), s.id)
		}
		for i, w := range missing {
			if i == examples {
				fmt.Fprintf(diag, "bench: … and %d more missing\n", len(missing)-examples)
				break
			}
			fmt.Fprintf(diag, "bench: missing trigger: rule=%s customer=%s qualified_at=%s cause=%s\n",
				w.Rule, w.CustomerID, w.QualifiedAt.Format(time.RFC3339Nano), w.CauseEventID)
		}
	}
	return res
}
