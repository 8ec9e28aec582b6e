package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/engine"
)

// Config configures the consumer.
type Config struct {
	Brokers []string
	Group   string
	// Partitions is the input topics' partition count (from EnsureTopics).
	Partitions int
	// CommitInterval is how often applied offsets are committed to the group.
	CommitInterval time.Duration
	// StopTimeout bounds how long a revoked worker may take to drain.
	StopTimeout time.Duration
	// MaxPollRecords bounds one poll.
	MaxPollRecords int
	// InstanceID makes the member static (KIP-345): a restarted instance
	// rejoins as itself and gets its assignment back without waiting for
	// the session timeout. A clean shutdown leaves the group explicitly.
	InstanceID string
	// SessionTimeout is how long the group waits for a silent member.
	SessionTimeout time.Duration
	// ProbeInterval is how often the input topics' end offsets are read for
	// the workers' cross-topic ordering and timer horizon (default 10ms): it
	// bounds how late a timer fires on a quiet partition.
	ProbeInterval time.Duration
	// ClientOpts are appended to the client's options (TLS, SASL, logging).
	ClientOpts []kgo.Opt
	// FencedPause is how long a task whose transactional producer was
	// fenced waits before it is restarted (default: the session timeout,
	// at least 10s): time for a member that lost the task without knowing
	// to learn it from the group, rather than fence the new owner back.
	FencedPause time.Duration
}

// Consumer runs the consumer group and the partition workers.
type Consumer struct {
	cfg   Config
	eng   *engine.Engine
	cl    *kgo.Client
	log   *zap.Logger
	clock clockwork.Clock
	// restorer, when set, brings a partition up to date with its
	// changelog before its worker starts.
	restorer *changelog.Restorer

	mu      sync.Mutex
	workers map[int32]*engine.Worker
	held    map[heldKey][]engine.Batch // batches waiting for a busy worker
	// owned is what the group has assigned to this member, per task: the
	// input topics whose partition of the task number we hold. Under
	// spur's balancer a task is assigned and revoked whole; owned lets the
	// callbacks handle a partial one safely all the same.
	owned  map[int32]map[string]bool
	failed error
	ready  atomic.Bool
	// Waking the poll loop for stopped workers (see watch).
	pollCancel context.CancelFunc
	woken      bool
	restartAt  map[int32]time.Time // fenced tasks' restart times; poll loop only
	// requestedAfter is a moment before the fetch request whose records
	// the next poll returns was sent (zero: unknown); poll loop only. See
	// take.
	requestedAfter time.Time
	fetches        uint64 // polls that returned records (Batch.Fetch); poll loop only
}

// Option configures New.
type Option func(*Consumer)

// WithLogger injects the logger.
func WithLogger(l *zap.Logger) Option { return func(c *Consumer) { c.log = l } }

// WithClock injects the clock: the commit interval, and the moments records
// were fetched and the input topics' ends read, which the workers compare
// with each other and, for timers, with deadlines (in production both are
// the wall clock).
func WithClock(cl clockwork.Clock) Option { return func(c *Consumer) { c.clock = cl } }

// WithRestorer restores each assigned partition from its changelog
// before its worker starts.
func WithRestorer(r *changelog.Restorer) Option { return func(c *Consumer) { c.restorer = r } }

// New creates the group client. Nothing is consumed until Run.
func New(cfg Config, eng *engine.Engine, opts ...Option) (*Consumer, error) {
	if cfg.Group == "" {
		return nil, errors.New("ingest: a consumer group id is required")
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 10 * time.Millisecond
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = 2000
	}
	if cfg.FencedPause <= 0 {
		cfg.FencedPause = max(cfg.SessionTimeout, 10*time.Second)
	}
	c := &Consumer{cfg: cfg, eng: eng, log: zap.NewNop(), clock: clockwork.NewRealClock(), workers: map[int32]*engine.Worker{}, held: map[heldKey][]engine.Batch{}, owned: map[int32]map[string]bool{},
		restartAt: map[int32]time.Time{}}
	for _, o := range opts {
		o(c)
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(eng.InputTopics()...),
		// Cooperative and co-partitioned (see CopartitionBalancer). The
		// range balancer, which also co-partitions but is eager, stays
		// listed second so that a rolling upgrade from a version that
		// lists only range works in one deploy: the group uses range
		// until every member offers spur-copartition-v1, then switches
		// (franz-go runs a group cooperatively when the chosen balancer
		// is). Rolling back to a range-only version downgrades the
		// group to eager, which franz-go handles by revoking everything
		// once; spur resumes from the offsets stored with its state.
		kgo.Balancers(CopartitionBalancer(), kgo.RangeBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers reach the workers, which step past them: a
		// topic written by transactional producers is caught up only past
		// its last marker.
		kgo.KeepControlRecords(),
		// Bounded fetch buffers keep memory flat under a backlog; a record larger
		// than these still arrives whole (KIP-74), to be dead-lettered. Behind
		// at 90 % of the max rate, halving them (from 2 and 8 MiB) took the
		// collector's share of the CPU from 21–28 % to 8–10 % with the max
		// rate unchanged (docs/BENCHMARKS.md, session 8). Halving them
		// again, with one fetch in flight instead of two: draining a
		// backlog of customers with full records, the fetch responses
		// held fell from 67 MB of the heap to under 7, the live heap from
		// about 230 to 175 MB, and the engine drained 42–47k events/s
		// against 40–41k (session 13). It was reverted for a while after a
		// restart bench's unexpected coupon, which came from the bench's
		// loader (session 14).
		kgo.FetchMaxPartitionBytes(512 << 10),
		kgo.MaxConcurrentFetches(1),
		kgo.FetchMaxBytes(2 << 20),
		// A short long-poll: partitions assigned while a fetch waits on idle
		// ones are fetched within this, which bounds failover latency.
		kgo.FetchMaxWait(250 * time.Millisecond),
		// Every fetch names every partition, and every response tells
		// each one's end, those with no new records too (see take).
		kgo.DisableFetchSessions(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		kgo.AdjustFetchOffsetsFn(c.adjust),
	}
	if cfg.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.SessionTimeout > 0 {
		kopts = append(kopts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	kopts = append(kopts, cfg.ClientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	c.cl = cl
	return c, nil
}

// Ready reports whether the consumer has joined its group and started the
// workers of its assignment.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Client returns the group client (for admin and lag queries).
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Assigned returns the partitions (tasks) this member owns.
func (c *Consumer) Assigned() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int32, 0, len(c.workers))
	for p := range c.workers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Run polls until ctx is done or a worker fails, then drains the workers,
// commits what they applied and leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.cl.Close()
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go c.probeEnds(probeCtx, c.cfg.ProbeInterval)
	// Commits run on their own ticker: a poll blocks while the input is
	// idle, and the last applied records must still be committed.
	go c.commitEvery(probeCtx, c.cfg.CommitInterval)
	var restartWait time.Duration
	for {
		// A worker whose queue is full gets its batches held here and its
		// partitions paused, instead of blocking the loop: every other
		// worker keeps receiving records (among them, perhaps, the ones
		// the full worker's task is waiting for on its other topic).
		pollCtx, cancelPoll := context.WithCancel(ctx)
		switch {
		case c.flushHeld():
			pollCtx, cancelPoll = context.WithTimeout(ctx, 10*time.Millisecond)
		case restartWait > 0:
			pollCtx, cancelPoll = context.WithTimeout(ctx, restartWait)
		}
		c.mu.Lock()
		c.pollCancel = cancelPoll
		if c.woken {
			cancelPoll()
		}
		c.woken = false
		c.mu.Unlock()
		pollStart := c.clock.Now()
		fetches := c.cl.PollRecords(pollCtx, c.cfg.MaxPollRecords)
		c.mu.Lock()
		c.pollCancel = nil
		c.mu.Unlock()
		cancelPoll()
		polled := c.clock.Now()
		if fetches.IsClientClosed() || ctx.Err() != nil {
			c.cl.AllowRebalance()
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return // our own short poll, or one woken for a stopped worker
			}
			c.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		c.take(fetches, pollStart, polled)
		restartWait = c.restartTasks(ctx)
		c.cl.AllowRebalance()
		if err := c.workerFailure(); err != nil {
			c.shutdown()
			return fmt.Errorf("ingest: %w", err)
		}
	}
	c.shutdown()
	return c.workerFailure()
}

// take hands the records of a poll that started at pollStart and returned
// at polled to the workers, with what the fetch says of every partition's
// end.
//
// A fetch response tells each partition's end (its last stable offset) as
// the broker read it after the request came, for the partitions that
// returned no records as well (fetch sessions are off, so every fetch
// names every partition). So a worker learns that a quiet topic has caught
// up at the pace of the fetches, as it would from a probe, without a
// request of its own: a task's quiet partitions ride with its records
// (Batch.Ends), to be taken in the same step, and a task with no records
// gets them as observations. And a worker need not wait for a probe to
// apply a record of one topic while the other has nothing buffered: the
// other's end, as told in the response that returned the record, was read
// after the record was appended (Batch.Fetch numbers the polls).
//
// Such an end held at any moment before the request was sent, which the
// client does not tell; fetching one at a time (MaxConcurrentFetches)
// bounds it. The next request goes out once the records of the fetch
// before have all been polled, so after the start of the poll that took
// the last of them. A poll that returned records and left none buffered
// sets that bound for the fetches after it. One that leaves records
// buffered, or finds a newer fetch already buffered, keeps the older
// bound, which holds all the same. A poll that returned no records tells
// nothing: the partitions it returned, if any, are the empty ones left
// over from the fetch before.
func (c *Consumer) take(fetches kgo.Fetches, pollStart, polled time.Time) {
	var records bool
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		records = records || len(ftp.Records) > 0
	})
	if !records {
		return
	}
	observed := c.requestedAfter
	c.fetches++
	// What the fetch told of the partitions without records, per task.
	var ends map[int32][]engine.End
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if len(ftp.Records) > 0 || ftp.Err != nil {
			return
		}
		if ends == nil {
			ends = map[int32][]engine.End{}
		}
		ends[ftp.Partition] = append(ends[ftp.Partition], engine.End{Topic: ftp.Topic, HighWatermark: ftp.LastStableOffset})
	})
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if len(ftp.Records) == 0 {
			return
		}
		detach(ftp.Records)
		c.eng.ObserveFetchDelay(polled.Sub(ftp.Records[0].Timestamp))
		b := engine.Batch{Topic: ftp.Topic, Records: ftp.Records, HighWatermark: ftp.LastStableOffset, ObservedAt: observed, FetchedAt: polled, Fetch: c.fetches}
		// The task's quiet partitions ride with its records: one step.
		b.Ends = ends[ftp.Partition]
		delete(ends, ftp.Partition)
		c.deliver(ftp.Partition, b)
	})
	for p, es := range ends { // tasks that fetched no records at all
		if w := c.worker(p); w != nil {
			for _, e := range es {
				w.Observe(engine.Batch{Topic: e.Topic, HighWatermark: e.HighWatermark, ObservedAt: observed, Fetch: c.fetches})
			}
		}
	}
	if c.cl.BufferedFetchRecords() == 0 {
		c.requestedAfter = pollStart
	}
}

// heldKey names one input partition: held batches keep their order per
// topic partition (the worker merges the topics by time).
type heldKey struct {
	p     int32
	topic string
}

// detach copies the records' keys, values and header values into one
// buffer of their own. A fetched record's bytes are a slice of the fetch
// response it came in (up to FetchMaxBytes, shared by every partition the
// fetch answered), so a record waiting for a busy worker kept its whole response
// alive: falling behind, the engine held several times its queued input in
// fetch buffers, and the garbage collector took over. Detached, a queued
// batch holds its own bytes only, which MaxUnappliedBytes bounds.
func detach(recs []*kgo.Record) {
	var n int
	for _, r := range recs {
		n += len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			n += len(h.Value)
		}
	}
	buf := make([]byte, 0, n)
	clone := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		buf = append(buf, b...)
		return buf[len(buf)-len(b) : len(buf) : len(buf)]
	}
	for _, r := range recs {
		r.Key = clone(r.Key)
		r.Value = clone(r.Value)
		for i := range r.Headers {
			r.Headers[i].Value = clone(r.Headers[i].Value)
		}
	}
}

// deliver hands a batch to its partition's worker, or holds it (pausing
// that topic partition) when the worker's queue is full, when the worker
// already holds MaxUnapplied records or MaxUnappliedBytes of that topic
// not yet applied (they may be waiting for the task's other topic, which
// keeps flowing), or when batches are already held for it, so that its
// records stay in order.
func (c *Consumer) deliver(p int32, b engine.Batch) {
	w := c.worker(p)
	if w == nil {
		return // revoked meanwhile
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := heldKey{p, b.Topic}
	if len(c.held[k]) == 0 && !w.Full(b.Topic) && w.TrySubmit(b) {
		return
	}
	if len(c.held[k]) == 0 {
		c.cl.PauseFetchPartitions(map[string][]int32{b.Topic: {p}})
	}
	c.held[k] = append(c.held[k], b)
}

// flushHeld hands held batches to workers that have room, resuming a topic
// partition once nothing is held for it. It reports whether any batch is
// still held.
func (c *Consumer) flushHeld() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, q := range c.held {
		w := c.workers[k.p]
		if w == nil {
			delete(c.held, k)
			c.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.p}})
			continue
		}
		for len(q) > 0 && !w.Full(k.topic) && w.TrySubmit(q[0]) {
			q[0] = engine.Batch{}
			q = q[1:]
		}
		if len(q) == 0 {
			delete(c.held, k)
			c.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.p}})
			continue
		}
		c.held[k] = q
	}
	return len(c.held) > 0
}

// dropHeld forgets the batches held for task p (its worker stopped: the
// next one reads them again from the offsets stored with the state) and
// resumes its partitions. Called with c.mu held.
func (c *Consumer) dropHeld(p int32) {
	for k := range c.held {
		if k.p == p {
			delete(c.held, k)
			c.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.p}})
		}
	}
}

// taskPartitions is partition p of every input topic.
func (c *Consumer) taskPartitions(p int32) map[string][]int32 {
	m := map[string][]int32{}
	for _, t := range c.eng.InputTopics() {
		m[t] = []int32{p}
	}
	return m
}

// commitEvery commits what the workers applied every interval until ctx
// ends. The group's offsets are for monitoring and tooling: spur resumes
// from the offsets stored with its state.
func (c *Consumer) commitEvery(ctx context.Context, interval time.Duration) {
	t := c.clock.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
			c.commitAsync(ctx)
		}
	}
}

// shutdown drains every worker, commits synchronously and leaves the group.
func (c *Consumer) shutdown() {
	c.mu.Lock()
	parts := make([]int32, 0, len(c.workers))
	for p := range c.workers {
		parts = append(parts, p)
	}
	c.mu.Unlock()
	c.stopWorkers(context.Background(), parts, true)
	leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.cl.LeaveGroupContext(leaveCtx); err != nil {
		c.log.Warn("leave group", zap.Error(err))
	}
	if c.cfg.InstanceID != "" {
		// A static member is not removed by LeaveGroup: ask the
		// coordinator explicitly, so its partitions move at once.
		resp, err := kadm.NewClient(c.cl).LeaveGroup(leaveCtx, kadm.LeaveGroup(c.cfg.Group).InstanceIDs(c.cfg.InstanceID).Reason("spur shutdown"))
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			c.log.Warn("leave group as static member", zap.String("instance_id", c.cfg.InstanceID), zap.Error(err))
		}
	}
}

func (c *Consumer) worker(p int32) *engine.Worker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workers[p]
}

func (c *Consumer) workerFailure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return c.failed
	}
	for _, w := range c.workers {
		select {
		case <-w.Done():
			if err := w.Err(); err != nil && !errors.Is(err, engine.ErrRestartTask) {
				return err
			}
		default:
		}
	}
	return nil
}

// restartTasks restarts the workers that stopped asking for it
// (engine.ErrRestartTask) as a new owner would start them: task producer
// initialised, state restored from the changelog, input re-read from the
// restored offsets. A fenced worker waits FencedPause first, so that a
// member that lost the task learns it from the group before it could fence
// the new owner back. It runs between polls, while rebalances wait, and
// returns how long until the next delayed restart (0: none).
func (c *Consumer) restartTasks(ctx context.Context) time.Duration {
	c.mu.Lock()
	var stopped []*engine.Worker
	for _, w := range c.workers {
		select {
		case <-w.Done():
			if errors.Is(w.Err(), engine.ErrRestartTask) {
				stopped = append(stopped, w)
			}
		default:
		}
	}
	c.mu.Unlock()
	var wait time.Duration
	now := time.Now() // the group's timing is real time, whatever clock the workers use
	for _, w := range stopped {
		p := w.Partition()
		if errors.Is(w.Err(), engine.ErrFenced) {
			at, ok := c.restartAt[p]
			if !ok {
				at = now.Add(c.cfg.FencedPause)
				c.restartAt[p] = at
				c.log.Warn("task producer fenced: another producer took the task over; restarting it after a pause unless the group moves it", zap.Int32("partition", p), zap.Duration("pause", c.cfg.FencedPause), zap.Error(w.Err()))
			}
			if d := at.Sub(now); d > 0 {
				if wait == 0 || d < wait {
					wait = d
				}
				continue
			}
		}
		delete(c.restartAt, p)
		c.log.Warn("restarting task", zap.Int32("partition", p), zap.Error(w.Err()))
		w.Stop(ctx)
		c.mu.Lock()
		delete(c.workers, p)
		c.dropHeld(p)
		var topics []string
		for t := range c.owned[p] {
			topics = append(topics, t)
		}
		c.mu.Unlock()
		sort.Strings(topics)
		nw, err := c.startWorker(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return 0 // shutting down: the task's state is safe in Pebble
			}
			if errors.Is(err, engine.ErrRestartTask) {
				// Fenced again while starting: try later.
				c.log.Warn("restart task", zap.Int32("partition", p), zap.Error(err))
				c.restartAt[p] = now.Add(c.cfg.FencedPause)
				c.pauseTask(p, topics)
				continue
			}
			c.setFailed(err)
			continue
		}
		c.launch(c.cl, p, nw, topics)
		m := map[string][]int32{}
		for _, t := range topics {
			m[t] = []int32{p}
		}
		c.reportEnds(ctx, c.cl, m)
	}
	return wait
}

// pauseTask pauses a task's partitions while it has no worker.
func (c *Consumer) pauseTask(p int32, topics []string) {
	m := map[string][]int32{}
	for _, t := range topics {
		m[t] = []int32{p}
	}
	c.cl.PauseFetchPartitions(m)
}

// watch wakes the poll loop when w stops with an error, so that a task
// waiting for a restart (or a failure) is seen at once.
func (c *Consumer) watch(w *engine.Worker) {
	go func() {
		<-w.Done()
		if w.Err() != nil {
			c.wakePoll()
		}
	}()
}

// wakePoll ends the poll in progress.
func (c *Consumer) wakePoll() {
	c.mu.Lock()
	c.woken = true
	cancel := c.pollCancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// tasks returns the partition numbers in an assignment.
func tasks(m map[string][]int32) []int32 {
	seen := map[int32]bool{}
	var out []int32
	for _, ps := range m {
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// assigned starts a worker for every task the assignment adds. Under
// cooperative rebalancing m holds only what is new to this member, and is
// often empty (the callback runs every rebalance); under eager rebalancing
// (the range balancer, during an upgrade) it holds everything.
func (c *Consumer) assigned(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	c.mu.Lock()
	before := map[int32][]string{} // tasks' partitions owned before this assignment
	for _, p := range tasks(m) {
		for t := range c.owned[p] {
			before[p] = append(before[p], t)
		}
		sort.Strings(before[p])
	}
	for t, ps := range m {
		for _, p := range ps {
			if c.owned[p] == nil {
				c.owned[p] = map[string]bool{}
			}
			c.owned[p][t] = true
		}
	}
	c.mu.Unlock()
	// A partition paused for a previous owner's full worker must fetch.
	cl.ResumeFetchPartitions(m)
	for _, p := range tasks(m) {
		if c.worker(p) != nil {
			continue
		}
		w, err := c.startWorker(ctx, p)
		if err != nil {
			c.log.Error("start worker", zap.Int32("partition", p), zap.Error(err))
			c.setFailed(err)
			continue
		}
		c.launch(cl, p, w, before[p])
	}
	if len(m) > 0 {
		c.reportEnds(ctx, cl, m)
		c.log.Info("partitions assigned", zap.Int32s("tasks", tasks(m)))
		c.warnPartial(tasks(m), "task assigned in part: its other partitions are expected in the follow-up rebalance")
	}
	c.ready.Store(true)
}

// launch registers task p's new worker and resumes the task's partitions
// this member kept while it had none (kept).
func (c *Consumer) launch(cl *kgo.Client, p int32, w *engine.Worker, kept []string) {
	c.mu.Lock()
	c.workers[p] = w
	c.mu.Unlock()
	c.watch(w)
	c.restoreStranded(cl, p, w, kept)
}

// setFailed records the first error that must stop the consumer.
func (c *Consumer) setFailed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed == nil {
		c.failed = err
	}
}

// restoreStranded resumes the partitions of task p that this member kept
// while the task's worker was stopped (see strand), from the offsets the
// new worker stored: what the stopped worker held back was never applied.
func (c *Consumer) restoreStranded(cl *kgo.Client, p int32, w *engine.Worker, topics []string) {
	if len(topics) == 0 {
		return
	}
	stored := w.Offsets()
	set := map[string]map[int32]kgo.EpochOffset{}
	resume := map[string][]int32{}
	for _, t := range topics {
		// Without a stored offset the topic was never applied: offset
		// 0, or the reset to the log start when 0 is gone.
		set[t] = map[int32]kgo.EpochOffset{p: {Epoch: -1, Offset: stored[t]}}
		resume[t] = []int32{p}
	}
	cl.SetOffsets(set)
	cl.ResumeFetchPartitions(resume)
	c.log.Info("task complete again: resuming its kept partitions", zap.Int32("partition", p), zap.Strings("topics", topics))
}

// warnPartial logs the tasks of which this member owns some input topics'
// partitions but not all.
func (c *Consumer) warnPartial(ps []int32, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.eng.InputTopics())
	for _, p := range ps {
		if k := len(c.owned[p]); k > 0 && k < n {
			var have []string
			for t := range c.owned[p] {
				have = append(have, t)
			}
			sort.Strings(have)
			c.log.Warn(msg, zap.Int32("partition", p), zap.Strings("owned_topics", have))
		}
	}
}

// startWorker restores the partition from its changelog, if any, and
// starts its worker, which resumes the input from the restored offsets.
func (c *Consumer) startWorker(ctx context.Context, p int32) (*engine.Worker, error) {
	// With transactions the task's producer is initialised first: that
	// fences the task's previous owner and ends the transaction it left
	// open, so the changelog the restore reads is final.
	if err := c.eng.OpenTask(ctx, p); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if c.restorer != nil {
		if _, err := c.restorer.Restore(ctx, p); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
	}
	return c.eng.StartWorker(p, c.cfg.Partitions)
}

// reportEnds tells each new worker where its input topics end, so that it
// holds timers back until it has read what was published before it started
// (an order waiting unread must cancel its cart's coupon). Only the
// partitions in m are asked for and reported: workers that were running
// already are not held up by a cooperative rebalance that did not touch them.
func (c *Consumer) reportEnds(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	req := endsRequest(m)
	if req == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	asked := c.clock.Now()
	ends, err := readEnds(ctx, cl, req)
	if err != nil {
		c.log.Warn("list end offsets; timers fire by the clock until records arrive", zap.Error(err))
		return
	}
	for _, e := range ends {
		if w := c.worker(e.partition); w != nil {
			w.Submit(ctx, engine.Batch{Topic: e.topic, HighWatermark: e.offset, ObservedAt: asked})
		}
	}
}

// probeEnds reports the input topics' end offsets to every worker every
// interval, so that a worker knows a quiet topic has nothing older than the
// record it is about to apply from another topic, and may fire a timer
// whose deadline has passed. Fetches report every partition's end too (see
// take), but only while records flow: a fetch on quiet partitions waits up
// to FetchMaxWait for one, so those need asking. It asks for the partitions
// of this member's tasks only.
func (c *Consumer) probeEnds(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		req := endsRequest(c.workerPartitions())
		if req == nil {
			continue
		}
		asked := c.clock.Now()
		rctx, cancel := context.WithTimeout(ctx, max(10*interval, time.Second))
		// The partitions of a shard that failed wait for the next probe.
		ends, _ := readEnds(rctx, c.cl, req)
		cancel()
		c.eng.ObserveEndProbe(c.clock.Since(asked))
		for _, e := range ends {
			if w := c.worker(e.partition); w != nil {
				w.Observe(engine.Batch{Topic: e.topic, HighWatermark: e.offset, ObservedAt: asked})
			}
		}
	}
}

// workerPartitions is the input partitions of the tasks that have a worker.
func (c *Consumer) workerPartitions() map[string][]int32 {
	c.mu.Lock()
	ps := make([]int32, 0, len(c.workers))
	for p := range c.workers {
		ps = append(ps, p)
	}
	c.mu.Unlock()
	if len(ps) == 0 {
		return nil
	}
	m := map[string][]int32{}
	for _, topic := range c.eng.InputTopics() {
		m[topic] = ps
	}
	return m
}

// partitionEnd is where an input partition ends.
type partitionEnd struct {
	topic     string
	partition int32
	offset    int64
}

// readEnds sends req (see endsRequest), sharded by partition leader. It
// returns the ends of the partitions answered without error, and the errors
// of the shards that failed, joined; an error of a single partition only
// leaves its end out.
func readEnds(ctx context.Context, cl *kgo.Client, req *kmsg.ListOffsetsRequest) ([]partitionEnd, error) {
	var ends []partitionEnd
	var errs []error
	for _, sh := range cl.RequestSharded(ctx, req) {
		if sh.Err != nil {
			errs = append(errs, sh.Err)
			continue
		}
		for _, rt := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					continue
				}
				ends = append(ends, partitionEnd{topic: rt.Topic, partition: rp.Partition, offset: rp.Offset})
			}
		}
	}
	return ends, errors.Join(errs...)
}

// endsRequest is one ListOffsets request for the end offsets of the
// partitions in m, or nil when m has none. It asks for the last stable
// offsets (read committed), since spur reads committed records only.
func endsRequest(m map[string][]int32) *kmsg.ListOffsetsRequest {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = 1 // read committed: the last stable offset
	for topic, ps := range m {
		if len(ps) == 0 {
			continue
		}
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range ps {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.CurrentLeaderEpoch = -1
			rp.Timestamp = -1 // the end
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	return req
}

// adjust replaces the group's committed offsets by the offsets stored with
// the state, which are never behind what was applied (with a changelog, the
// restore on assignment has put them there). A partition with no state
// (a new instance without a changelog, or a changelog holding nothing for
// the partition yet) is rebuilt by replaying its input from the earliest
// retained record: resuming from the group's offset would
// silently drop the carts armed before it. Triggers that the replay
// qualifies again carry the ids they had, and old ones are stale.
func (c *Consumer) adjust(_ context.Context, m map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, ps := range m {
		for p := range ps {
			w := c.worker(p)
			if w == nil {
				continue
			}
			if o, ok := w.Offsets()[topic]; ok {
				ps[p] = kgo.NewOffset().At(o).WithEpoch(-1)
				continue
			}
			c.log.Info("no local state for partition: rebuilding from the start of the input", zap.String("topic", topic), zap.Int32("partition", p))
			ps[p] = kgo.NewOffset().AtStart()
		}
	}
	return m, nil
}

// revoked drains, commits and stops the workers of the tasks revoked. Under
// cooperative rebalancing m holds only the tasks moving away (the callback
// also runs, empty, at the end of every group session); the other workers
// keep running through the rebalance.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	ts := tasks(m)
	if len(ts) == 0 {
		return
	}
	c.log.Info("partitions revoked", zap.Int32s("tasks", ts))
	c.disown(m)
	c.stopWorkers(ctx, ts, true)
	c.strand(cl, ts)
}

func (c *Consumer) lost(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	ts := tasks(m)
	if len(ts) == 0 {
		return
	}
	c.log.Warn("partitions lost", zap.Int32s("tasks", ts))
	c.disown(m)
	// Another member may own them already: our commit would be rejected
	// or, worse, move its offsets. The state and offsets are safe in Pebble.
	c.stopWorkers(ctx, ts, false)
	c.strand(cl, ts)
}

// disown forgets the partitions in m.
func (c *Consumer) disown(m map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			delete(c.owned[p], t)
			if len(c.owned[p]) == 0 {
				delete(c.owned, p)
			}
		}
	}
}

// strand pauses the partitions this member still owns of tasks whose worker
// was just stopped. A task revoked in part cannot keep its worker (the
// revoked partition may go to another member, which starts its own), and
// without a worker the kept partitions' records would be fetched and
// dropped. spur's balancer revokes tasks whole, so this only happens with
// ownership left by another balancer; the follow-up rebalance sorts it out.
// Pausing keeps the fetch position (buffered records are not returned);
// restoreStranded resumes them if the task comes back.
func (c *Consumer) strand(cl *kgo.Client, ts []int32) {
	c.warnPartial(ts, "task revoked in part: its worker is stopped and its remaining partitions paused")
	c.mu.Lock()
	defer c.mu.Unlock()
	pause := map[string][]int32{}
	for _, p := range ts {
		for t := range c.owned[p] {
			pause[t] = append(pause[t], p)
		}
	}
	if len(pause) > 0 {
		cl.PauseFetchPartitions(pause)
	}
}

func (c *Consumer) stopWorkers(ctx context.Context, parts []int32, commit bool) {
	stopCtx, cancel := context.WithTimeout(context.Background(), c.cfg.StopTimeout)
	defer cancel()
	var wg sync.WaitGroup
	offsets := map[string]map[int32]kgo.EpochOffset{}
	var mu sync.Mutex
	for _, p := range parts {
		w := c.worker(p)
		if w == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Stop(stopCtx); err != nil {
				c.log.Error("worker stopped with error", zap.Int32("partition", p), zap.Error(err))
			}
			mu.Lock()
			for t, o := range w.Applied() {
				if offsets[t] == nil {
					offsets[t] = map[int32]kgo.EpochOffset{}
				}
				offsets[t][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.mu.Lock()
	for _, p := range parts {
		delete(c.workers, p)
		// Held batches were never applied: the next owner reads them
		// again from the offsets stored with the state.
		c.dropHeld(p)
	}
	c.mu.Unlock()
	if commit && len(offsets) > 0 {
		commitCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.cl.CommitOffsetsSync(commitCtx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				c.log.Warn("commit on revoke", zap.Error(err))
			}
		})
	}
}

func (c *Consumer) commitAsync(ctx context.Context) {
	c.mu.Lock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for p, w := range c.workers {
		for t, o := range w.Applied() {
			if offsets[t] == nil {
				offsets[t] = map[int32]kgo.EpochOffset{}
			}
			offsets[t][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	c.cl.CommitOffsets(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		if err != nil && ctx.Err() == nil {
			c.log.Warn("commit", zap.Error(err))
		}
	})
}
