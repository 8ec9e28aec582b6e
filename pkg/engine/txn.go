package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/state"
)

// ErrRestartTask is wrapped by the error of a worker that must be restarted
// the way a new owner starts: its task producer re-initialised (which fences
// an earlier incarnation and resolves its open transaction), its rows
// restored from the committed changelog, its input re-read from the
// restored offsets. A transaction whose outcome is unknown (a commit that
// failed without a definitive answer) ends this way: the committed
// changelog, read after the re-initialisation, says whether it committed.
var ErrRestartTask = errors.New("engine: task must be restarted")

// ErrFenced is wrapped (with ErrRestartTask) by the error of a worker whose
// transactional id was taken over by another producer: another instance
// owns the task now, or believes it does. Its consumer restarts it only
// after a pause, once the group has had time to tell which member owns it.
var ErrFenced = errors.New("engine: task producer fenced by a newer owner")

// TxnPhase names a point of a task transaction, for WithTxnHook.
type TxnPhase int

// Phases of a task transaction.
const (
	// TxnBeforeCommit: every record of the transaction is on the broker,
	// the transaction is not committed.
	TxnBeforeCommit TxnPhase = iota
	// TxnAfterCommit: the transaction committed, the worker has not yet
	// deleted its rows from the outbox.
	TxnAfterCommit
)

// WithTransactions makes the engine write each task's changelog and
// output records in Kafka transactions, one producer per task: newClient
// returns a client with a transactional id stable per task (the same on
// every instance, so that a new owner fences the previous one), that sends
// changelog records to the partition they name (emit.ManualPartitions).
// The store must keep its outbox out of the changelog (state.WithLocalOutbox)
// and Config.ChangelogTopic must be set.
func WithTransactions(newClient func(part int32) (*kgo.Client, error)) Option {
	return func(o *options) { o.txnClient = newClient }
}

// WithTxnHook calls hook at each phase of every task transaction, with the
// number of output records it holds; when it returns an error the worker
// stops there, leaving everything as a process dying at that moment would
// (tests).
func WithTxnHook(hook func(part int32, phase TxnPhase, outputs int) error) Option {
	return func(o *options) { o.txnHook = hook }
}

// Transactional reports whether the engine writes in Kafka transactions.
func (e *Engine) Transactional() bool { return e.txnClient != nil }

// OpenTask creates the transactional producer of task part and initialises
// its producer id, which fences every earlier producer of the task and
// completes or aborts the transaction it left open. It must precede the
// task's restore, so that the committed changelog the restore reads is
// final; StartWorker uses the producer. It is a no-op without transactions.
func (e *Engine) OpenTask(ctx context.Context, part int32) error {
	if e.txnClient == nil {
		return nil
	}
	cl, err := e.initTaskClient(ctx, part)
	if err != nil {
		return err
	}
	e.tasksMu.Lock()
	if old := e.tasks[part]; old != nil {
		old.Close()
	}
	e.tasks[part] = cl
	e.tasksMu.Unlock()
	return nil
}

// initTaskClient creates a task's client and loads its producer id.
func (e *Engine) initTaskClient(ctx context.Context, part int32) (*kgo.Client, error) {
	cl, err := e.txnClient(part)
	if err != nil {
		return nil, errorf(part, "task producer: %w", err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		if isFenced(err) {
			err = fmt.Errorf("%w: %w: %w", ErrRestartTask, ErrFenced, err)
		}
		return nil, errorf(part, "initialise task producer: %w", err)
	}
	return cl, nil
}

// takeTask returns the producer OpenTask made for part, or makes one.
func (e *Engine) takeTask(part int32) (*kgo.Client, error) {
	e.tasksMu.Lock()
	cl := e.tasks[part]
	delete(e.tasks, part)
	e.tasksMu.Unlock()
	if cl != nil {
		return cl, nil
	}
	return e.initTaskClient(context.Background(), part)
}

// isFenced reports whether err says another producer took the
// transactional id over.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// txnSender writes a task's changelog rows and output records in
// transactions, one at a time: the rows of the steps committed locally while
// a transaction is in flight wait for the next one. A transaction always
// holds whole steps (a step's changelog rows, its step end and its output
// records), so the committed changelog and the committed outputs agree: a
// step's outputs are delivered exactly when its step end is visible to
// read_committed readers. The worker goroutine owns cl, outs and busy; the
// transaction's goroutine reports through mu.
type txnSender struct {
	cl   *kgo.Client
	outs []outRow // output records not yet in a transaction, in order
	busy bool     // a transaction is in flight
	wg   sync.WaitGroup

	mu   sync.Mutex
	done bool        // the transaction in flight ended
	err  error       // and failed
	next *kgo.Client // the client to use from now on (re-created after an abort)
}

// txnBegin starts a transaction with every row not yet sent, unless one is
// in flight.
func (w *Worker) txnBegin() {
	x, c := w.txn, w.clog
	if x == nil || x.busy || (c.sent == len(c.rows) && len(x.outs) == 0) {
		return
	}
	clog := append([]state.ChangelogRow(nil), c.rows[c.sent:]...)
	c.sent = len(c.rows)
	outs := x.outs
	x.outs = nil
	x.busy = true
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		cl, offsets, err := w.commitTxn(x.cl, clog, outs)
		if err == nil {
			w.txnAcked(clog, offsets, outs)
		}
		x.mu.Lock()
		x.done, x.err, x.next = true, err, cl
		x.mu.Unlock()
		select {
		case w.ackSignal <- struct{}{}:
		default:
		}
	}()
}

// txnCheck notes the end of the transaction in flight; it returns the
// error that failed it.
func (w *Worker) txnCheck() error {
	x := w.txn
	if x == nil || !x.busy {
		return nil
	}
	x.mu.Lock()
	done, err, next := x.done, x.err, x.next
	x.done, x.err, x.next = false, nil, nil
	x.mu.Unlock()
	if !done {
		return nil
	}
	x.busy = false
	if next != nil {
		x.cl = next
	}
	return err
}

// txnAcked hands a committed transaction's rows to the next step, as the
// promises of the non-transactional producer do, and counts its triggers.
func (w *Worker) txnAcked(clog []state.ChangelogRow, offsets []int64, outs []outRow) {
	w.mu.Lock()
	for _, o := range outs {
		w.acked = append(w.acked, o.seq)
	}
	w.mu.Unlock()
	c := w.clog
	c.mu.Lock()
	for i, r := range clog {
		c.acked = append(c.acked, clogAcked{r.Seq, offsets[i]})
	}
	c.mu.Unlock()
	for _, o := range outs {
		if o.out.Kind == emit.OutTrigger {
			w.e.m.Triggers.WithLabelValues(o.out.Rule, o.out.TriggerKind).Inc()
			w.e.m.TriggerLatency.WithLabelValues(o.out.Rule).Observe(w.e.clock.Since(o.out.QualifiedAt).Seconds())
		}
	}
}

// errAborted marks a transaction aborted for certain: nothing of it is
// visible, and its rows may be sent again.
var errAborted = errors.New("transaction aborted")

// commitTxn writes the rows in a transaction and commits it. A
// transaction aborted for certain (a record failed before the commit) is
// retried, after a backoff, by a new client: re-initialising the producer
// after an error is the safe course (Jepsen's analysis of Kafka found
// reused producers misbehaving after aborts). Any other failure is
// returned wrapping ErrRestartTask. It returns the client to use next and
// the offsets of the changelog records.
func (w *Worker) commitTxn(cl *kgo.Client, clog []state.ChangelogRow, outs []outRow) (*kgo.Client, []int64, error) {
	for {
		offsets, err := w.runTxn(cl, clog, outs)
		if err == nil {
			w.e.m.Transactions.WithLabelValues("committed").Inc()
			if h := w.e.txnHook; h != nil {
				if err := h(w.part, TxnAfterCommit, len(outs)); err != nil {
					return cl, nil, err
				}
			}
			return cl, offsets, nil
		}
		var he hookError
		if errors.As(err, &he) {
			return cl, nil, he.err
		}
		if isFenced(err) {
			w.e.m.Transactions.WithLabelValues("fenced").Inc()
			return cl, nil, fmt.Errorf("%w: %w: %w", ErrRestartTask, ErrFenced, err)
		}
		if !errors.Is(err, errAborted) || w.ctx.Err() != nil {
			w.e.m.Transactions.WithLabelValues("unknown").Inc()
			return cl, nil, fmt.Errorf("%w: transaction outcome unknown: %w", ErrRestartTask, err)
		}
		w.e.m.Transactions.WithLabelValues("aborted").Inc()
		w.log.Warn("transaction aborted; re-sending its records in a new transaction with a new producer", zap.Error(err))
		cl.Close()
		select {
		case <-w.e.clock.After(w.e.cfg.ProduceRetryBackoff):
		case <-w.ctx.Done():
			return nil, nil, fmt.Errorf("%w: %w", ErrRestartTask, w.ctx.Err())
		}
		var ierr error
		cl, ierr = w.e.initTaskClient(w.ctx, w.part)
		if ierr != nil {
			if !errors.Is(ierr, ErrRestartTask) {
				ierr = fmt.Errorf("%w: %w", ErrRestartTask, ierr)
			}
			return nil, nil, ierr
		}
	}
}

// hookError carries an error returned by the test hook.
type hookError struct{ err error }

func (h hookError) Error() string { return h.err.Error() }

// runTxn runs one transaction; it returns the offsets of its changelog
// records.
func (w *Worker) runTxn(cl *kgo.Client, clog []state.ChangelogRow, outs []outRow) ([]int64, error) {
	if err := cl.BeginTransaction(); err != nil {
		return nil, err
	}
	var (
		mu      sync.Mutex
		perr    error
		offsets = make([]int64, len(clog))
	)
	c := w.clog
	for i, row := range clog {
		cl.Produce(w.ctx, changelog.Record(c.topic, w.part, c.writer, row), func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				perr = firstErr(perr, err)
			case r.Partition != w.part:
				perr = firstErr(perr, fmt.Errorf("engine: changelog record for partition %d went to partition %d: the producer must honour record partitions on %s (emit.ManualPartitions)", w.part, r.Partition, c.topic))
			default:
				offsets[i] = r.Offset
			}
		})
	}
	for _, o := range outs {
		cl.Produce(w.ctx, o.out.Record(), func(_ *kgo.Record, err error) {
			if err == nil {
				return
			}
			w.onProduceError(o.seq, o.out, err)
			mu.Lock()
			perr = firstErr(perr, err)
			mu.Unlock()
		})
	}
	err := cl.Flush(w.ctx)
	mu.Lock()
	err = firstErr(perr, err)
	mu.Unlock()
	if err == nil && w.e.txnHook != nil {
		if herr := w.e.txnHook(w.part, TxnBeforeCommit, len(outs)); herr != nil {
			return nil, hookError{herr}
		}
	}
	if err != nil {
		if isFenced(err) {
			return nil, err
		}
		// Nothing was committed: abort, so that the records are
		// discarded for certain before they are sent again.
		if aerr := cl.EndTransaction(context.WithoutCancel(w.ctx), kgo.TryAbort); aerr != nil {
			return nil, fmt.Errorf("abort after %w: %w", err, aerr)
		}
		return nil, fmt.Errorf("%w: %w", errAborted, err)
	}
	// Not cancelled with the worker: an interrupted EndTxn leaves the
	// outcome unknown.
	if err := cl.EndTransaction(context.WithoutCancel(w.ctx), kgo.TryCommit); err != nil {
		return nil, err
	}
	return offsets, nil
}

// firstErr keeps the first error.
func firstErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// TransactionalID returns the transactional id of task part of a group:
// stable per task, so that whichever instance owns the task fences the
// one that owned it before.
func TransactionalID(group string, part int32) string {
	return group + "-task-" + strconv.Itoa(int(part))
}
