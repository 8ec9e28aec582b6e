package engine

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/state"
	"github.com/spur-crm/spur/pkg/timer"
)

// Batch is a run of records of one topic-partition from one fetch. A batch
// without records tells the worker a topic's end offset (the ingest loop
// sends one per topic on assignment), so that it knows whether its input has
// caught up before it fires timers.
type Batch struct {
	Topic   string
	Records []*kgo.Record
	// HighWatermark is the partition's end offset (the last stable offset:
	// spur reads committed records only); negative when unknown.
	HighWatermark int64
	// ObservedAt, when set, is a moment before HighWatermark was read: the
	// topic held nothing beyond it then. The ingest loop sets it for its
	// probes, taken just before asking, and for a fetch a moment before
	// the request was sent, when it knows one (zero otherwise).
	ObservedAt time.Time
	// Ends are the ends of the task's other input partitions, without
	// records, read with HighWatermark (so also as of ObservedAt): a
	// fetch tells those of every partition it asked for. They ride with
	// the records so that a worker takes them in the same step.
	Ends []End
	// FetchedAt is a moment, on the same clock as ObservedAt, after the
	// records were fetched (the ingest loop uses the time its poll
	// returned). A record waits until every other input topic has been
	// observed after it was fetched, or its end was told by the fetch
	// that returned the record or a later one (see Fetch), unless that
	// topic has records buffered to compare with.
	FetchedAt time.Time
	// Fetch numbers the fetch response the batch came from, counting up
	// (0: none). A response tells the ends of its partitions as the
	// broker read them after every record in it was appended: a record
	// appended to one input topic before a record of the other that came
	// in the same response was in it, or is counted in the end it told.
	Fetch uint64

	synced chan struct{} // closed once the step applying the batch committed
}

// End is an input topic's end offset (see Batch.HighWatermark).
type End struct {
	Topic         string
	HighWatermark int64
}

// ErrStopped is returned by Submit after Stop.
var ErrStopped = errors.New("engine: worker stopped")

// Worker owns one partition (task). Submit, Applied, Offsets and Stop are
// safe to call from other goroutines; everything else runs on the worker's
// own goroutine.
type Worker struct {
	e          *Engine
	part       int32
	partLabel  string
	partitions int
	log        *zap.Logger

	in   chan Batch
	obs  chan Batch // end-offset observations, see Observe
	quit chan struct{}
	done chan struct{}
	ctx  context.Context
	stop context.CancelFunc

	// Owned by the worker goroutine.
	next        map[string]int64     // next offset to apply, per topic
	hw          map[string]int64     // high watermark per topic, from the last fetch
	observed    map[string]time.Time // when hw was read
	endFetch    map[string]uint64    // the latest fetch that told hw (Batch.Fetch)
	input       map[string][]fetched // fetched, not yet applied
	buffered    int                  // records in input
	waitSince   time.Time            // when the merge started holding a record back
	idleExpired bool                 // MaxTaskIdle ran out: applying without waiting
	waitLimit   time.Duration        // the bound of the current hold
	waitFor     string               // what it waits for: HoldRecords or HoldEnd
	watermark   map[string]time.Time
	inflight    map[uint64]*emit.Out
	cache       *state.Cache // decoded customers of this partition
	retryAt     time.Time
	pending     int // timers armed
	// soonest is a lower bound of the earliest timer's deadline (exact
	// after a scan; a cancelled timer leaves it early, which costs one
	// scan), so that waiting and the due check need not read the timer
	// rows, and a scan starts past the tombstones of earlier timers.
	soonest      time.Time
	soonestKnown bool
	stepArmed    time.Time // the earliest deadline armed in this step (zero: none)
	// unapplied counts, per input topic, the records submitted and not
	// yet applied, and their bytes (read by the consumer).
	unapplied map[string]*unappliedInput
	// consumed holds the spur_events_consumed_total child of each (topic,
	// type) seen: resolving labels costs more than the increment, and
	// every event counts.
	consumed map[[2]string]prometheus.Counter
	retry    []uint64
	buf      []byte
	clog     *clogSender // nil without a changelog topic
	txn      *txnSender  // nil without transactions

	// Shared with broker callbacks and the ingest loop.
	mu        sync.Mutex
	applied   map[string]int64
	acked     []uint64
	failed    []uint64
	ackSignal chan struct{}
	err       error
	start     map[string]int64
}

// StartWorker loads a partition's offsets and outbox, re-sends every output
// record the previous owner did not see acknowledged, and starts the worker.
// partitions is the input topics' partition count (to check record keys).
func (e *Engine) StartWorker(part int32, partitions int) (*Worker, error) {
	offsets, err := e.store.Offsets(part)
	if err != nil {
		return nil, errorf(part, "load offsets: %w", err)
	}
	pending, err := timer.Count(e.store.DB(), part)
	if err != nil {
		return nil, errorf(part, "count timers: %w", err)
	}
	rows, err := e.store.Outbox(part)
	if err != nil {
		return nil, errorf(part, "load outbox: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{
		e: e, part: part, partLabel: strconv.Itoa(int(part)), partitions: partitions,
		log: e.log.With(zap.Int32("partition", part)),
		in:  make(chan Batch, queuedBatches), obs: make(chan Batch, 8), quit: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, stop: cancel,
		next: offsets, hw: map[string]int64{}, observed: map[string]time.Time{}, endFetch: map[string]uint64{}, input: map[string][]fetched{}, watermark: map[string]time.Time{},
		inflight: map[uint64]*emit.Out{}, pending: pending, cache: state.NewCache(e.cfg.CustomerCacheBytes / max(partitions, 1)),
		applied: map[string]int64{}, ackSignal: make(chan struct{}, 1), start: map[string]int64{},
		unapplied: map[string]*unappliedInput{}, consumed: map[[2]string]prometheus.Counter{},
	}
	for _, t := range e.InputTopics() {
		w.unapplied[t] = new(unappliedInput)
	}
	for t, o := range offsets {
		w.applied[t] = o
		w.start[t] = o
	}
	if e.txnClient != nil {
		cl, err := e.takeTask(part)
		if err != nil {
			cancel()
			return nil, err
		}
		w.txn = &txnSender{cl: cl}
	}
	e.m.TimersPending.WithLabelValues(w.partLabel).Set(float64(pending))
	for _, r := range rows {
		out := new(emit.Out)
		if err := out.UnmarshalBinary(r.Value); err != nil {
			cancel()
			return nil, errorf(part, "outbox row %d: %w", r.Seq, err)
		}
		w.send(r.Seq, out)
	}
	if len(rows) > 0 {
		w.log.Info("re-sending unacknowledged outbox", zap.Int("records", len(rows)))
	}
	if err := w.clogStart(); err != nil {
		cancel()
		if w.txn != nil {
			w.txn.cl.Close()
		}
		return nil, errorf(part, "load changelog outbox: %w", err)
	}
	w.txnBegin()
	go w.run()
	return w, nil
}

// Partition returns the worker's partition.
func (w *Worker) Partition() int32 { return w.part }

// Offsets returns the next offset to consume per input topic, as stored when
// the worker started. A topic without an entry has never been applied.
func (w *Worker) Offsets() map[string]int64 {
	out := make(map[string]int64, len(w.start))
	for t, o := range w.start {
		out[t] = o
	}
	return out
}

// Applied returns the next offset per topic of everything applied so far:
// what is safe to commit to the consumer group.
func (w *Worker) Applied() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int64, len(w.applied))
	for t, o := range w.applied {
		out[t] = o
	}
	return out
}

// Err returns the error that stopped the worker, if any.
func (w *Worker) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Apply hands a batch to the worker and waits until the step that applies
// it (and fires the timers due by then) has committed. It drives a worker
// without a consumer, as `spur test` does; acknowledgements of the records
// it produced are handled by later steps.
func (w *Worker) Apply(ctx context.Context, b Batch) error {
	b.synced = make(chan struct{})
	if err := w.Submit(ctx, b); err != nil {
		return err
	}
	select {
	case <-b.synced:
		return nil
	case <-w.done:
		if err := w.Err(); err != nil {
			return err
		}
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TrySubmit hands a batch to the worker unless its queue is full.
func (w *Worker) TrySubmit(b Batch) bool {
	w.count(b, 1)
	select {
	case w.in <- b:
		return true
	default:
		w.count(b, -1)
		return false
	}
}

// count adds (sign 1) or takes back (-1) a batch's records to those of its
// topic submitted and not applied.
func (w *Worker) count(b Batch, sign int64) {
	n, ok := w.unapplied[b.Topic]
	if !ok || len(b.Records) == 0 {
		return
	}
	var size int64
	for _, r := range b.Records {
		size += RecordSize(r)
	}
	n.records.Add(sign * int64(len(b.Records)))
	n.bytes.Add(sign * size)
}

// unappliedInput is what of one input topic a worker was handed and has
// not applied.
type unappliedInput struct {
	records, bytes atomic.Int64
}

// take counts rec as applied (or skipped).
func (n *unappliedInput) take(rec *kgo.Record) {
	n.records.Add(-1)
	n.bytes.Add(-RecordSize(rec))
}

// RecordSize is the bytes of rec's key, value and headers: what an input
// record queued for a worker holds of the heap (see MaxUnappliedBytes).
func RecordSize(rec *kgo.Record) int64 {
	n := len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// Observe reports a topic's end offset, observed at b.ObservedAt, without
// records. It never blocks: observations travel apart from record batches,
// so a worker busy with a backlog still learns that the other topic has
// caught up; when its queue is full, the observation is dropped (a newer
// one follows).
func (w *Worker) Observe(b Batch) {
	b.Records = nil
	select {
	case w.obs <- b:
	default:
	}
}

// Submit hands a batch to the worker, blocking while its queue is full
// (backpressure towards the consumer).
func (w *Worker) Submit(ctx context.Context, b Batch) error {
	w.count(b, 1)
	select {
	case w.in <- b:
		return nil
	case <-w.done:
		w.count(b, -1)
		return ErrStopped
	case <-ctx.Done():
		w.count(b, -1)
		return ctx.Err()
	}
}

// Stop applies the batches already submitted, waits until the outbox is
// acknowledged or ctx ends, and stops the worker. It returns the worker's
// error, if it failed.
func (w *Worker) Stop(ctx context.Context) error {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		w.stop() // abandon produce waits; the outbox keeps what is unacknowledged
		<-w.done
	}
	w.stop()
	if x := w.txn; x != nil {
		// A transaction left open is aborted by the task's next
		// producer (or by the broker's transaction timeout).
		x.wg.Wait()
		x.mu.Lock()
		if x.next != nil {
			x.cl = x.next
		}
		x.mu.Unlock()
		if x.cl != nil {
			x.cl.Close()
		}
	}
	w.e.m.TimersPending.DeleteLabelValues(w.partLabel)
	w.e.m.OutboxPending.DeleteLabelValues(w.partLabel)
	w.e.m.ChangelogPending.DeleteLabelValues(w.partLabel)
	for _, t := range w.e.InputTopics() {
		w.e.m.ConsumerLag.DeleteLabelValues(t, w.partLabel)
	}
	return w.Err()
}

// Done is closed when the worker has stopped.
func (w *Worker) Done() <-chan struct{} { return w.done }

func (w *Worker) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.log.Error("worker failed", zap.Error(err))
}

func (w *Worker) run() {
	defer close(w.done)
	clock := w.e.clock
	t := clock.NewTimer(0)
	defer t.Stop()
	for {
		t.Reset(w.wait())
		// The worker takes every batch it is given: the consumer bounds
		// what it gives per topic (Unapplied), so a topic whose records
		// wait for the other topic's is paused while the other's batches
		// still arrive (refusing batches here would hold those too, and
		// stall the task until MaxTaskIdleBehind).
		select {
		case b := <-w.in:
			if !w.stepAll(b, w.in) {
				return
			}
		case b := <-w.obs:
			// An observation changes nothing to apply unless it lets a
			// held record or a due timer go: skip the step otherwise
			// (probes come every few milliseconds).
			if !w.observe(b) {
				continue
			}
			if err := w.step(nil); err != nil {
				w.fail(err)
				return
			}
		case <-t.Chan():
			if err := w.step(nil); err != nil {
				w.fail(err)
				return
			}
		case <-w.ackSignal:
			if err := w.step(nil); err != nil {
				w.fail(err)
				return
			}
		case <-w.quit:
			w.drain()
			return
		}
	}
}

// stepAll applies first and whatever else ch holds (up to its capacity) in
// one step, then releases Apply callers waiting on those batches. It
// reports false when the worker failed.
// queuedBatches is how many fetched batches wait for a worker; a step takes
// all that are queued, up to maxStepRecords records: under load that is a
// group commit (one synced Pebble commit for many fetches), caught up it is
// a step per fetch. With Config.StepLinger a step of fewer than
// lingerRecords records first waits that long for more batches: at 25 % of
// a mature engine's maximum, 5 ms took about 15 % off its CPU per event,
// with timer lateness no better (docs/BENCHMARKS.md, session 14). A full
// queue makes the ingest loop pause the task's partitions.
//
// A step holds every customer it touched, decoded, until it commits, with
// the batch and the changelog's copy of what it wrote: with customers whose
// records had filled up (dozens of events each), four workers' steps of
// 5,000 records took the live heap to the memory limit, and the collector
// then took half the CPU; a backlog drained at 18k events/s against 40k
// with steps of 2,000 (docs/BENCHMARKS.md, session 13).
const (
	queuedBatches  = 32
	maxStepRecords = 2000
	lingerRecords  = 200 // Config.StepLinger waits only below this
)

func (w *Worker) stepAll(first Batch, ch chan Batch) bool {
	batches := []Batch{first}
	records := len(first.Records)
	var linger <-chan time.Time
	if l := w.e.cfg.StepLinger; l > 0 && records > 0 && records < lingerRecords {
		linger = w.e.clock.After(l)
	}
more:
	for len(batches) < cap(ch) && records < maxStepRecords {
		select {
		case b := <-ch:
			batches = append(batches, b)
			records += len(b.Records)
			continue
		default:
		}
		if linger == nil || records >= lingerRecords {
			break
		}
		select {
		case b := <-ch:
			batches = append(batches, b)
			records += len(b.Records)
		case <-linger:
			break more
		case <-w.quit:
			break more
		}
	}
	if err := w.step(batches); err != nil {
		w.fail(err)
		return false
	}
	for _, b := range batches {
		if b.synced != nil {
			close(b.synced)
		}
	}
	return true
}

// drain applies what is queued and waits for the outbox to be acknowledged.
func (w *Worker) drain() {
	for {
		select {
		case b := <-w.in:
			if err := w.step([]Batch{b}); err != nil {
				w.fail(err)
				return
			}
			continue
		default:
		}
		break
	}
	for len(w.inflight) > 0 || w.clogPending() > 0 {
		select {
		case <-w.ackSignal:
			if err := w.step(nil); err != nil {
				w.fail(err)
				return
			}
		case <-w.ctx.Done():
			// Unacknowledged rows stay in the outbox for the next owner.
			w.step(nil)
			return
		case <-w.e.clock.After(w.e.cfg.ProduceRetryBackoff):
			if err := w.step(nil); err != nil {
				w.fail(err)
				return
			}
		}
	}
}

// wait returns how long the worker may sleep before it has timers to fire
// or failed sends to retry.
func (w *Worker) wait() time.Duration {
	now := w.e.clock.Now()
	max := w.e.cfg.MaxWaitIdle
	if !w.retryAt.IsZero() {
		max = min(max, timer.Wait(now, w.retryAt, max))
	}
	if !w.waitSince.IsZero() && !w.idleExpired {
		// Wake when the hold mustWait started would run out.
		max = min(max, timer.Wait(now, w.waitSince.Add(w.waitLimit), max))
	}
	if w.pending == 0 {
		return max
	}
	next, held, err := w.heldTimer(now)
	if err != nil || next.Equal(timer.Never) {
		return max
	}
	if held && !next.After(now) {
		// Due by the clock but held back by an input topic: its records or
		// the next report of its end will wake us.
		return max
	}
	return timer.Wait(now, next, max)
}

// horizon is the latest deadline that may fire now. A timer must not fire
// while an event that would cancel it may still be unread, so the clock is
// held back by each input topic: to the event time a topic that is behind
// its high watermark has reached, and to the moment we last saw the end of a
// topic that is caught up (a record appended after that is unknown to us;
// the ingest loop reports ends every probe interval, and every fetch does).
func (w *Worker) horizon(now time.Time) time.Time {
	h := now
	for _, topic := range w.e.InputTopics() {
		if w.e.cfg.AwaitInputEnds {
			_, ended := w.hw[topic]
			_, seen := w.observed[topic]
			if !ended && !seen {
				return time.Time{}
			}
		}
		if w.behind(topic) {
			// Up to the event time its applied records reached, and no
			// further: an unapplied record may be older than any moment
			// we saw the topic's end (a producer that was down, a
			// replay), however recent its append. The restart bench's
			// load, events an hour old, fired 323 coupons early when a
			// topic behind was held only to the last probe it had been
			// applied up to.
			if wm := w.watermark[topic]; wm.Before(h) {
				h = wm
			}
			continue
		}
		if seen, ok := w.observed[topic]; ok && seen.Before(h) {
			h = seen
		}
	}
	return h
}

// step applies input batches (possibly none), fires due timers, deletes
// acknowledged outbox rows, and commits it all as one batch; then it sends
// the new output records.
func (w *Worker) step(batches []Batch) error {
	start := time.Now()
	w.stepArmed = time.Time{}
	st := w.e.store.NewStep(w.part).WithCache(w.cache)
	if w.clog != nil {
		st.WithChangelog()
	}
	sc := stepCtx{w: w, st: st, ps: w.e.pipes.Load()}

	w.mu.Lock()
	acked, failed := w.acked, w.failed
	w.acked, w.failed = nil, nil
	w.mu.Unlock()
	if err := st.AckOutbox(acked...); err != nil {
		st.Abort()
		return err
	}
	for _, seq := range acked {
		delete(w.inflight, seq)
	}
	if err := w.clogAck(st); err != nil {
		st.Abort()
		return err
	}
	if err := w.txnCheck(); err != nil {
		st.Abort()
		return errorf(w.part, "%w", err)
	}
	if len(failed) > 0 && w.retryAt.IsZero() {
		w.retryAt = w.e.clock.Now().Add(w.e.cfg.ProduceRetryBackoff)
	}
	w.retry = append(w.retry, failed...)

	now := w.e.clock.Now()
	for _, b := range batches {
		for _, r := range b.Records {
			w.input[b.Topic] = append(w.input[b.Topic], fetched{rec: r, at: b.FetchedAt, fetch: b.Fetch})
		}
		w.buffered += len(b.Records)
		if w.noteEnd(b) {
			defer w.reportLag(b.Topic)
		}
		for _, e := range b.Ends {
			if w.noteEnd(Batch{Topic: e.Topic, HighWatermark: e.HighWatermark, ObservedAt: b.ObservedAt, Fetch: b.Fetch}) {
				defer w.reportLag(e.Topic)
			}
		}
	}
	if err := sc.applyBuffered(now); err != nil {
		st.Abort()
		return err
	}
	if err := sc.fireDue(now); err != nil {
		st.Abort()
		return err
	}
	if st.Empty() && len(sc.outs) == 0 {
		st.Abort()
	} else if err := st.Commit(); err != nil {
		return errorf(w.part, "commit step: %w", err)
	}
	w.publishApplied()
	w.clogCommitted(st)
	for _, o := range sc.outs {
		w.send(o.seq, o.out)
	}
	if !w.retryAt.IsZero() && !now.Before(w.retryAt) {
		w.retryAt = time.Time{}
		retry := w.retry
		w.retry = nil
		for _, seq := range retry {
			if out, ok := w.inflight[seq]; ok {
				w.send(seq, out)
			}
		}
		if !w.clogRetry() {
			w.retryAt = now.Add(w.e.cfg.ProduceRetryBackoff)
		}
	}
	w.txnBegin()
	w.e.m.OutboxPending.WithLabelValues(w.partLabel).Set(float64(len(w.inflight)))
	if w.clog != nil {
		w.e.m.ChangelogPending.WithLabelValues(w.partLabel).Set(float64(len(w.clog.rows)))
	}
	w.e.m.TimersPending.WithLabelValues(w.partLabel).Set(float64(w.pending))
	if len(batches) > 0 || len(sc.outs) > 0 {
		w.e.m.StepDuration.Observe(time.Since(start).Seconds())
	}
	return nil
}

// noteEnd takes in what b says of its topic's end, and reports whether it
// moved. An end offset only grows; a late answer to an older probe must not
// move it back.
func (w *Worker) noteEnd(b Batch) bool {
	if b.HighWatermark < 0 || b.HighWatermark < w.hw[b.Topic] {
		return false
	}
	w.hw[b.Topic] = b.HighWatermark
	if b.ObservedAt.After(w.observed[b.Topic]) {
		w.observed[b.Topic] = b.ObservedAt
	}
	w.endFetch[b.Topic] = max(w.endFetch[b.Topic], b.Fetch)
	return true
}

// observe takes in end-offset observations, first and those queued behind
// it, and reports whether a step may now do something: apply buffered
// records (which may have waited for these), or fire a timer that the
// horizon held back.
func (w *Worker) observe(first Batch) bool {
	for b, ok := first, true; ok; {
		if w.noteEnd(b) {
			w.reportLag(b.Topic)
		}
		select {
		case b = <-w.obs:
		default:
			ok = false
		}
	}
	if w.buffered > 0 {
		return true
	}
	if w.pending == 0 {
		return false
	}
	_, held, err := w.heldTimer(w.e.clock.Now())
	if err != nil {
		return true // a step reports the error
	}
	return !held
}

// heldTimer returns the soonest timer's deadline as soonestTimer does, and
// whether it lies past the horizon at now, so that no timer may fire yet.
func (w *Worker) heldTimer(now time.Time) (next time.Time, held bool, err error) {
	next, err = w.soonestTimer()
	if err != nil {
		return time.Time{}, false, err
	}
	return next, next.After(w.horizon(now)), nil
}

// soonestTimer returns a lower bound of the earliest timer's deadline
// (timer.Never when there is none), reading the timer rows only when it
// is unknown. Called between steps, when the rows are committed.
func (w *Worker) soonestTimer() (time.Time, error) {
	if !w.soonestKnown {
		_, next, err := timer.Scan(w.e.store.DB(), w.part, time.Time{}, time.Time{}, 0)
		if err != nil {
			return time.Time{}, err
		}
		w.soonest, w.soonestKnown = next, true
	}
	return w.soonest, nil
}

// armed notes a timer armed in the current step.
func (w *Worker) armed(d time.Time) {
	if w.stepArmed.IsZero() || d.Before(w.stepArmed) {
		w.stepArmed = d
	}
	if w.soonestKnown && d.Before(w.soonest) {
		w.soonest = d
	}
}

// behind reports whether a topic is known to have records we have not
// applied: fetched and buffered, or past our offset by its high watermark.
// A topic whose end is unknown has told us nothing since we started (the
// ingest loop reports end offsets on assignment, so that happens only to
// workers driven directly) and is taken as caught up.
func (w *Worker) behind(topic string) bool {
	if len(w.input[topic]) > 0 {
		return true
	}
	hw, known := w.hw[topic]
	return known && hw > w.next[topic]
}

// nextTopic returns the topic whose buffered head record is oldest.
func (w *Worker) nextTopic() string {
	best := ""
	var bestTS time.Time
	for _, t := range w.e.InputTopics() {
		if len(w.input[t]) == 0 {
			continue
		}
		ts := w.input[t][0].rec.Timestamp
		if best == "" || ts.Before(bestTS) {
			best, bestTS = t, ts
		}
	}
	return best
}

// mustWait reports whether the head of topic must wait for another topic
// with nothing buffered that may still hold an older record: one known to be
// behind, or one whose end we last saw before the head was fetched, and not
// in the fetch response that returned the head or a later one. A record
// appended to the other topic before the head was fetched is then counted in
// what we know of that topic's end; comparing fetch and probe times, both on
// the consumer's clock, or fetch numbers, does not depend on how producers
// stamp records. (Apache Kafka reads the partitions of one fetch response
// one after another, so a record appended within the microseconds between
// reading the other topic's end and the head's partition can go after the
// head: records that close are concurrent to any producer. The embedded
// broker builds a response at once.) It starts or ends the idle clock.
func (w *Worker) mustWait(topic string, now time.Time) bool {
	head := w.input[topic][0]
	wait, limit, waitFor := false, w.e.cfg.MaxTaskIdle, HoldEnd
	for _, other := range w.e.InputTopics() {
		if other == topic || len(w.input[other]) > 0 {
			continue
		}
		if w.behind(other) {
			// Records are known to exist: they will be fetched, so wait
			// longer than for a topic merely not seen recently.
			wait, limit, waitFor = true, max(limit, w.e.cfg.MaxTaskIdleBehind), HoldRecords
			break
		}
		if _, known := w.hw[other]; known && w.observed[other].Before(head.at) && (head.fetch == 0 || w.endFetch[other] < head.fetch) {
			wait = true
		}
	}
	if !wait {
		if !w.waitSince.IsZero() && !w.idleExpired {
			w.e.m.MergeHold.WithLabelValues(w.waitFor).Observe(now.Sub(w.waitSince).Seconds())
		}
		w.waitSince, w.idleExpired = time.Time{}, false
		return false
	}
	if w.waitSince.IsZero() {
		w.waitSince = now
	}
	w.waitLimit, w.waitFor = limit, waitFor
	if now.Sub(w.waitSince) < limit {
		return true
	}
	// Waited long enough: apply, and keep applying without waiting again
	// until the other topic has caught up.
	if !w.idleExpired {
		w.idleExpired = true
		w.e.m.TaskIdleExpired.Inc()
		w.e.m.MergeHold.WithLabelValues(w.waitFor).Observe(now.Sub(w.waitSince).Seconds())
	}
	return false
}

// MaxUnapplied and MaxUnappliedBytes bound what of one input topic the
// consumer hands a worker before it waits for it to be applied (pausing
// that topic's partition meanwhile): records, and their bytes (keys, values
// and headers). The bytes bound keeps a backlog of large records, hostile
// or not, from filling the heap: 5,000 records of 1 MiB would be 5 GiB.
const (
	MaxUnapplied      = 5000
	MaxUnappliedBytes = 8 << 20
)

// Unapplied returns how many records of topic were submitted to the worker
// and not yet applied (or skipped), and their bytes. Safe for concurrent
// use.
func (w *Worker) Unapplied(topic string) (records, bytes int64) {
	if n, ok := w.unapplied[topic]; ok {
		return n.records.Load(), n.bytes.Load()
	}
	return 0, 0
}

// Full reports whether the worker holds as much of topic, not yet
// applied, as the consumer may hand it (MaxUnapplied, MaxUnappliedBytes).
// Safe for concurrent use.
func (w *Worker) Full(topic string) bool {
	records, bytes := w.Unapplied(topic)
	return records >= MaxUnapplied || bytes >= MaxUnappliedBytes
}

// fetched is a record waiting in a worker's input, with when it was fetched.
type fetched struct {
	rec   *kgo.Record
	at    time.Time
	fetch uint64 // Batch.Fetch
}

// reportLag updates a topic's lag and unapplied-bytes gauges.
func (w *Worker) reportLag(topic string) {
	hw, ok := w.hw[topic]
	if !ok {
		return
	}
	lag := hw - w.next[topic]
	if lag < 0 {
		lag = 0
	}
	w.e.m.ConsumerLag.WithLabelValues(topic, w.partLabel).Set(float64(lag))
	if n, ok := w.unapplied[topic]; ok {
		w.e.m.InputUnapplied.WithLabelValues(topic, w.partLabel).Set(float64(n.bytes.Load()))
	}
}

func (w *Worker) publishApplied() {
	w.mu.Lock()
	for t, o := range w.next {
		w.applied[t] = o
	}
	w.mu.Unlock()
}

// send produces an outbox row; the promise acknowledges or re-queues it.
func (w *Worker) send(seq uint64, out *emit.Out) {
	w.inflight[seq] = out
	if w.txn != nil {
		w.txn.outs = append(w.txn.outs, outRow{seq: seq, out: out})
		return
	}
	rec := out.Record()
	w.e.producer.Produce(w.ctx, rec, func(r *kgo.Record, err error) {
		if err != nil {
			w.onProduceError(seq, out, err)
		}
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, seq)
		} else {
			w.failed = append(w.failed, seq)
		}
		w.mu.Unlock()
		if err == nil && out.Kind == emit.OutTrigger {
			w.e.m.Triggers.WithLabelValues(out.Rule, out.TriggerKind).Inc()
			w.e.m.TriggerLatency.WithLabelValues(out.Rule).Observe(w.e.clock.Since(out.QualifiedAt).Seconds())
		}
		select {
		case w.ackSignal <- struct{}{}:
		default:
		}
	})
}

// onProduceError runs on a client goroutine. A record the broker will never
// take (too large) is shrunk when it is a dead letter, so that the reason
// and source offset still reach the dead-letter topic.
func (w *Worker) onProduceError(seq uint64, out *emit.Out, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	w.e.m.ProduceErrors.WithLabelValues(out.Topic).Inc()
	w.log.Warn("produce failed; will retry from the outbox", zap.String("topic", out.Topic), zap.Uint64("seq", seq), zap.Error(err))
	if out.Kind == emit.OutDeadLetter && (errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)) {
		// Mutating out is safe: the worker reads it again only to re-send
		// it, after this promise has queued the retry below.
		size := len(out.Value)
		out.Value = out.Value[:min(len(out.Value), 1024)]
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: "spur-truncated-from", Value: strconv.AppendInt(nil, int64(size), 10)})
	}
}

// outRow is an output record added to the outbox in the current step.
type outRow struct {
	seq uint64
	out *emit.Out
}

// stepCtx is the state of one step.
type stepCtx struct {
	ps   *pipeSet // the pipelines of this step (a reload applies from the next)
	prof profileCache
	w    *Worker
	st   *state.Step
	outs []outRow
}
