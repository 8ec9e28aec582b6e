package engine

import (
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/state"
)

// clogSender produces a partition's changelog rows in sequence order, so
// that the changelog partition holds a gapless prefix of the steps: after
// a failed record nothing more is produced until every outstanding promise
// has returned, and then the rows are re-sent from the first one not
// acknowledged (the idempotent producer fails every record buffered behind
// a failed one, so none of them is on the broker). The worker goroutine owns
// everything but the fields under mu, which promises write.
type clogSender struct {
	topic  string
	writer []byte
	// The records of the outbox, in order: rows[:done] were acknowledged
	// but their step's end not yet (a step's outbox row goes, and the
	// checkpoint moves past it, once all of it is acknowledged), and
	// rows[:sent] were produced.
	rows    []state.ChangelogRow
	done    int
	sent    int
	blocked bool // a record failed: re-send once nothing is outstanding

	mu          sync.Mutex
	acked       []clogAcked // in the order the broker acknowledged them
	failed      bool
	outstanding int
	err         error

	promise func(*kgo.Record, error) // of every record produced, see clogPromise
}

// clogAcked is a changelog record the broker acknowledged.
type clogAcked struct {
	seq    uint64
	offset int64
}

// clogStart loads the rows a previous run (or a restore) left unacknowledged
// and sends them.
func (w *Worker) clogStart() error {
	if w.e.cfg.ChangelogTopic == "" {
		return nil
	}
	writer, err := w.e.store.ChangelogWriter(w.part)
	if err != nil {
		return err
	}
	rows, err := w.e.store.ResumeChangelog(w.part)
	if err != nil {
		return err
	}
	w.clog = &clogSender{topic: w.e.cfg.ChangelogTopic, writer: writer, rows: rows}
	w.clog.promise = w.clogPromise
	if len(rows) > 0 {
		w.log.Info("re-sending unacknowledged changelog records", zap.Int("records", len(rows)))
	}
	w.clogSend()
	return nil
}

// clogAck moves acknowledgements into the step (deleting the outbox rows of
// the steps acknowledged in full and advancing the checkpoint past them)
// and notes failures. It returns a broken invariant (a record on the wrong
// partition).
func (w *Worker) clogAck(st *state.Step) error {
	c := w.clog
	if c == nil {
		return nil
	}
	st.WithChangelog()
	c.mu.Lock()
	acked, failed, err := c.acked, c.failed, c.err
	c.acked, c.failed = nil, false
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if failed {
		c.blocked = true
		if w.retryAt.IsZero() {
			w.retryAt = w.e.clock.Now().Add(w.e.cfg.ProduceRetryBackoff)
		}
	}
	// The broker acknowledges a partition's records in order. A record
	// acknowledged out of turn was produced after an earlier one failed,
	// before the worker saw the failure: it is sent again after the failed
	// one, and only that copy counts.
	cut, next := 0, int64(0)
	for _, a := range acked {
		if c.done == c.sent || c.rows[c.done].Seq != a.seq {
			continue
		}
		c.done++
		if c.rows[c.done-1].RowEnd {
			cut, next = c.done, a.offset+1
		}
	}
	if cut == 0 {
		return nil
	}
	if err := st.AckChangelog(c.rows[:cut], state.Checkpoint{Offset: next, At: w.e.clock.Now()}); err != nil {
		return err
	}
	n := copy(c.rows, c.rows[cut:])
	clear(c.rows[n:])
	c.rows = c.rows[:n]
	c.done -= cut
	c.sent -= cut
	return nil
}

// clogCommitted queues the rows a committed step added and sends them.
func (w *Worker) clogCommitted(st *state.Step) {
	if w.clog == nil {
		return
	}
	w.clog.rows = append(w.clog.rows, st.Mirrored()...)
	w.clogSend()
}

// clogRetry re-sends after a failure once no promise is outstanding; it
// reports false while it must wait longer.
func (w *Worker) clogRetry() bool {
	c := w.clog
	if c == nil || !c.blocked {
		return true
	}
	c.mu.Lock()
	outstanding := c.outstanding
	c.mu.Unlock()
	if outstanding > 0 {
		return false
	}
	// Re-send from the first record not acknowledged, counting the
	// acknowledgements clogAck has yet to take in.
	c.blocked, c.sent = false, c.done
	c.mu.Lock()
	for _, a := range c.acked {
		if c.sent < len(c.rows) && c.rows[c.sent].Seq == a.seq {
			c.sent++
		}
	}
	c.mu.Unlock()
	w.clogSend()
	return true
}

// clogPending is the number of changelog rows not yet acknowledged.
func (w *Worker) clogPending() int {
	if w.clog == nil {
		return 0
	}
	return len(w.clog.rows)
}

func (w *Worker) clogSend() {
	c := w.clog
	if c.blocked || w.txn != nil {
		return // with transactions, txnBegin sends the rows
	}
	for ; c.sent < len(c.rows); c.sent++ {
		row := c.rows[c.sent]
		if row.KeyOnly {
			// Its value is not at hand: sent as is it would restore an
			// empty record (state.ResumeChangelog turns such rows into
			// current values before a worker starts).
			c.mu.Lock()
			c.err = fmt.Errorf("engine: changelog row %d of partition %d holds no value", row.Seq, w.part)
			c.mu.Unlock()
			return
		}
		rec := changelog.Record(c.topic, w.part, c.writer, row)
		c.mu.Lock()
		c.outstanding++
		c.mu.Unlock()
		w.e.producer.Produce(w.ctx, rec, c.promise)
	}
}

// clogPromise takes the broker's answer for one changelog record; one
// function serves every record (the record carries its sequence number),
// so producing one allocates no closure.
func (w *Worker) clogPromise(r *kgo.Record, err error) {
	c := w.clog
	seq, _ := changelog.RecordSeq(r)
	c.mu.Lock()
	c.outstanding--
	switch {
	case err != nil:
		c.failed = true
	case r.Partition != w.part:
		c.err = fmt.Errorf("engine: changelog record for partition %d went to partition %d: the producer must honour record partitions on %s (emit.ManualPartitions)", w.part, r.Partition, c.topic)
	default:
		c.acked = append(c.acked, clogAcked{seq, r.Offset})
	}
	c.mu.Unlock()
	if err != nil {
		w.e.m.ProduceErrors.WithLabelValues(c.topic).Inc()
		w.log.Warn("changelog produce failed; will re-send in order", zap.Uint64("seq", seq), zap.Error(err))
	}
	select {
	case w.ackSignal <- struct{}{}:
	default:
	}
}
