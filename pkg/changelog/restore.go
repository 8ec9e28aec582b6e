package changelog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/state"
)

// Config configures a Restorer.
type Config struct {
	// Topic is the changelog topic.
	Topic string
	// ClientOpts build the clients that read the topic (seed brokers, TLS,
	// SASL, logging).
	ClientOpts []kgo.Opt
	// ProgressEvery is how many records pass between progress logs
	// (default 100000).
	ProgressEvery int
	// TombstoneAge bounds how old a checkpoint may be for a warm restore
	// (default 12h): compaction removes deletions after the topic's
	// delete.retention.ms (24h by default), and a copy that last read the
	// topic before then may miss one. An older copy is rebuilt instead.
	TombstoneAge time.Duration
	// CommitBytes bounds the restored changes held before a Pebble commit
	// (default 16 MiB).
	CommitBytes int
}

// Mode says what a restore did.
type Mode string

// Modes.
const (
	ModeNone Mode = "none"
	ModeOwn  Mode = "own"
	ModeTail Mode = "tail"
	ModeFull Mode = "full"
	ModeSeed Mode = "seed"
)

// Result describes one partition's restore.
type Result struct {
	Mode Mode
	// Records read from the topic; Applied of them were changes applied
	// (step ends and records of unfinished steps are not).
	Records, Applied int
	// Unfinished is the number of records after the last step end (a step
	// whose producer died), superseded by a step of current values.
	Unfinished int
	From, End  int64
	Duration   time.Duration
}

// Restorer brings a partition's rows up to date with the changelog before
// its worker starts. It is safe for concurrent use on distinct partitions.
type Restorer struct {
	cfg   Config
	store *state.Store
	adm   *kadm.Client
	admCl *kgo.Client
	log   *zap.Logger
	clock clockwork.Clock
	m     *Metrics
}

type options struct {
	log   *zap.Logger
	clock clockwork.Clock
	reg   prometheus.Registerer
}

// Option configures New.
type Option func(*options)

// WithLogger injects the logger.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithClock injects the clock (checkpoint ages).
func WithClock(c clockwork.Clock) Option { return func(o *options) { o.clock = c } }

// WithRegisterer registers the restorer's metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// New builds a restorer of store's partitions from cfg.Topic.
func New(cfg Config, store *state.Store, opts ...Option) (*Restorer, error) {
	if cfg.Topic == "" {
		return nil, errors.New("changelog: a topic is required")
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 100000
	}
	if cfg.TombstoneAge <= 0 {
		cfg.TombstoneAge = 12 * time.Hour
	}
	if cfg.CommitBytes <= 0 {
		cfg.CommitBytes = 16 << 20
	}
	o := options{log: zap.NewNop(), clock: clockwork.NewRealClock()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	cl, err := kgo.NewClient(cfg.ClientOpts...)
	if err != nil {
		return nil, fmt.Errorf("changelog: %w", err)
	}
	return &Restorer{cfg: cfg, store: store, adm: kadm.NewClient(cl), admCl: cl, log: o.log, clock: o.clock, m: NewMetrics(o.reg)}, nil
}

// Close releases the restorer's client.
func (r *Restorer) Close() { r.admCl.Close() }

// Metrics returns the restorer's metrics.
func (r *Restorer) Metrics() *Metrics { return r.m }

// Topic returns the changelog topic.
func (r *Restorer) Topic() string { return r.cfg.Topic }

// Restore brings partition part's rows up to date with its changelog
// partition (see the package documentation for the cases), and leaves its
// checkpoint at the partition's end. Nothing else may write the partition
// meanwhile.
func (r *Restorer) Restore(ctx context.Context, part int32) (Result, error) {
	start := time.Now()
	log := r.log.With(zap.Int32("partition", part), zap.String("topic", r.cfg.Topic))
	res, err := r.restore(ctx, part, log)
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("changelog: restore partition %d: %w", part, err)
	}
	r.m.Restores.WithLabelValues(string(res.Mode)).Inc()
	r.m.RestoreDuration.Observe(res.Duration.Seconds())
	fields := []zap.Field{zap.String("mode", string(res.Mode)), zap.Int("records", res.Records), zap.Int("applied", res.Applied),
		zap.Int64("from", res.From), zap.Int64("end", res.End), zap.Duration("took", res.Duration)}
	if res.Records > 0 {
		fields = append(fields, zap.Float64("records_per_sec", float64(res.Records)/res.Duration.Seconds()))
	}
	if res.Unfinished > 0 {
		fields = append(fields, zap.Int("unfinished_step_records", res.Unfinished))
	}
	log.Info("partition state ready", fields...)
	return res, nil
}

func (r *Restorer) restore(ctx context.Context, part int32, log *zap.Logger) (Result, error) {
	ls, end, err := r.bounds(ctx, part)
	if err != nil {
		return Result{}, err
	}
	res := Result{Mode: ModeNone, From: end, End: end}
	cp, haveCP, err := r.store.Checkpoint(part)
	if err != nil {
		return res, err
	}
	rows, err := r.store.ChangelogRows(part)
	if err != nil {
		return res, err
	}
	now := r.clock.Now()
	atEnd := state.Checkpoint{Offset: end, At: now}
	if len(rows) > 0 {
		// This copy is ahead of what the broker acknowledged.
		switch {
		case haveCP && cp.Offset == end:
			return res, nil // the worker sends the rows' keys' current values
		case haveCP && cp.Offset < end && cp.Offset >= ls:
			own, err := r.ownTail(ctx, part, cp.Offset, end, rows)
			if err != nil {
				return res, err
			}
			if own {
				res.Mode, res.From, res.Records = ModeOwn, cp.Offset, int(end-cp.Offset)
				return res, nil
			}
		}
		log.Warn("local state diverged from the changelog (another copy wrote it): rebuilding it from the changelog",
			zap.Int("unacknowledged_records", len(rows)), zap.Int64("checkpoint", cp.Offset), zap.Int64("end", end))
		return r.full(ctx, part, ls, end, log)
	}
	has, err := r.store.HasState(part)
	if err != nil {
		return res, err
	}
	switch {
	case !haveCP && !has:
		return r.full(ctx, part, ls, end, log)
	case !haveCP && end == ls:
		n, err := r.store.Snapshot(part, atEnd)
		if err != nil {
			return res, err
		}
		log.Info("mirroring existing state to an empty changelog", zap.Int("rows", n))
		res.Mode = ModeSeed
		return res, nil
	case !haveCP:
		log.Warn("local state without a changelog checkpoint: rebuilding it from the changelog")
		return r.full(ctx, part, ls, end, log)
	case cp.Offset == end:
		return res, nil
	case cp.Offset > end:
		// The topic was recreated or truncated: it no longer holds what
		// this copy read. Mirror the local state into it afresh.
		n, err := r.store.Snapshot(part, atEnd)
		if err != nil {
			return res, err
		}
		log.Warn("changelog ends before the local checkpoint (topic recreated?): mirroring local state to it",
			zap.Int64("checkpoint", cp.Offset), zap.Int64("end", end), zap.Int("rows", n))
		res.Mode = ModeSeed
		return res, nil
	case cp.Offset < ls:
		log.Warn("changelog records after the local checkpoint were deleted: rebuilding", zap.Int64("checkpoint", cp.Offset), zap.Int64("log_start", ls))
		return r.full(ctx, part, ls, end, log)
	case now.Sub(cp.At) > r.cfg.TombstoneAge:
		log.Info("local checkpoint older than the tombstone retention allows: rebuilding", zap.Time("checkpoint_at", cp.At))
		return r.full(ctx, part, ls, end, log)
	}
	res, err = r.apply(ctx, part, cp.Offset, end, log)
	res.Mode = ModeTail
	return res, err
}

// bounds returns the partition's log start and end (last stable) offsets.
func (r *Restorer) bounds(ctx context.Context, part int32) (start, end int64, err error) {
	starts, err := r.adm.ListStartOffsets(ctx, r.cfg.Topic)
	if err != nil {
		return 0, 0, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := r.adm.ListCommittedOffsets(ctx, r.cfg.Topic)
	if err != nil {
		return 0, 0, fmt.Errorf("list end offsets: %w", err)
	}
	s, ok := starts.Lookup(r.cfg.Topic, part)
	e, ok2 := ends.Lookup(r.cfg.Topic, part)
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("changelog topic %s has no partition %d", r.cfg.Topic, part)
	}
	if s.Err != nil {
		return 0, 0, s.Err
	}
	if e.Err != nil {
		return 0, 0, e.Err
	}
	return s.Offset, e.Offset, nil
}

func (r *Restorer) full(ctx context.Context, part int32, ls, end int64, log *zap.Logger) (Result, error) {
	if err := r.store.WipePartition(part); err != nil {
		return Result{}, err
	}
	res, err := r.apply(ctx, part, ls, end, log)
	res.Mode = ModeFull
	return res, err
}

// read calls fn for every record of [from, end) of the partition.
func (r *Restorer) read(ctx context.Context, part int32, from, end int64, fn func(*kgo.Record) error) error {
	if from >= end {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), r.cfg.ClientOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.Topic: {part: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers are returned (and skipped below): with
		// transactions the partition's last offset is a commit marker,
		// which must be seen to know the range was read.
		kgo.KeepControlRecords(),
		kgo.FetchMaxPartitionBytes(16<<20),
		kgo.FetchMaxBytes(32<<20),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		done := false
		var fnErr error
		fs.EachRecord(func(rec *kgo.Record) {
			if done || fnErr != nil || rec.Offset < from {
				return
			}
			if rec.Offset >= end {
				// Written after we looked: the worker's own business.
				done = true
				return
			}
			if !rec.Attrs.IsControl() {
				fnErr = fn(rec)
			}
			// The last offset is in the active segment, which compaction
			// never touches: it is always read (a record or a marker;
			// records of aborted transactions are dropped by the client,
			// and their abort marker follows them).
			if rec.Offset >= end-1 {
				done = true
			}
		})
		if fnErr != nil {
			return fnErr
		}
		if done {
			return nil
		}
	}
}

// ownTail reports whether [from, end) holds exactly the first of this
// copy's unacknowledged rows; if so they are dropped from the outbox and
// the checkpoint moved to end. With a local outbox (transactions), the
// output records of the steps found were committed with them: their
// outbox rows, those below the outbox sequence the last complete step
// found stored, are dropped too.
func (r *Restorer) ownTail(ctx context.Context, part int32, from, end int64, rows []state.ChangelogRow) (bool, error) {
	writer, err := r.store.ChangelogWriter(part)
	if err != nil {
		return false, err
	}
	i := 0
	seqKey := state.OutboxSeqKey(part)
	var outSeq, stepOutSeq uint64
	var haveOutSeq, stepHasOutSeq bool
	errForeign := errors.New("foreign record")
	err = r.read(ctx, part, from, end, func(rec *kgo.Record) error {
		e, err := Parse(rec)
		if err != nil || i >= len(rows) || string(e.Writer) != string(writer) || e.Seq != rows[i].Seq {
			return errForeign
		}
		i++
		switch {
		case e.StepEnd:
			if stepHasOutSeq {
				outSeq, haveOutSeq = stepOutSeq, true
			}
			stepHasOutSeq = false
		case bytes.Equal(e.Key, seqKey) && len(e.Value) == 8:
			stepOutSeq, stepHasOutSeq = binary.BigEndian.Uint64(e.Value), true
		}
		return nil
	})
	if errors.Is(err, errForeign) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	rs := r.store.NewRestore(part)
	defer rs.Close()
	if err := rs.DropChangelogRows(rows, i); err != nil {
		return false, err
	}
	if r.store.LocalOutbox() && haveOutSeq {
		if err := rs.DropOutboxBelow(outSeq); err != nil {
			return false, err
		}
	}
	return true, rs.Commit(state.Checkpoint{Offset: end, At: r.clock.Now()})
}

// apply applies the complete steps of [from, end) and supersedes the
// records of a trailing unfinished step; the checkpoint ends at end.
func (r *Restorer) apply(ctx context.Context, part int32, from, end int64, log *zap.Logger) (Result, error) {
	res := Result{From: from, End: end}
	if from >= end {
		return res, r.finish(part, nil, end)
	}
	label := strconv.Itoa(int(part))
	r.m.Restoring.WithLabelValues(label).Set(1)
	defer r.m.Restoring.DeleteLabelValues(label)
	defer r.m.RestoreRemaining.DeleteLabelValues(label)
	log.Info("restoring partition from the changelog", zap.Int64("from", from), zap.Int64("end", end))

	rs := r.store.NewRestore(part)
	defer rs.Close()
	var step []state.Change // records since the last step end
	applied := from         // offset after the last step end applied
	started, lastLog := time.Now(), time.Now()
	err := r.read(ctx, part, from, end, func(rec *kgo.Record) error {
		res.Records++
		r.m.RestoreRecords.Inc()
		e, err := Parse(rec)
		if err != nil {
			return err
		}
		if !e.StepEnd {
			step = append(step, e.Change)
		} else {
			for _, c := range step {
				if err := rs.Apply(c); err != nil {
					return fmt.Errorf("offset %d: %w", rec.Offset, err)
				}
			}
			res.Applied += len(step)
			step = step[:0]
			applied = rec.Offset + 1
			if rs.Size() >= r.cfg.CommitBytes {
				if err := rs.Commit(state.Checkpoint{Offset: applied, At: r.clock.Now()}); err != nil {
					return err
				}
			}
		}
		if res.Records%r.cfg.ProgressEvery == 0 {
			r.m.RestoreRemaining.WithLabelValues(label).Set(float64(end - rec.Offset - 1))
			now := time.Now()
			log.Info("restore progress", zap.Int("records", res.Records), zap.Int64("offset", rec.Offset), zap.Int64("end", end),
				zap.Float64("records_per_sec", float64(r.cfg.ProgressEvery)/now.Sub(lastLog).Seconds()),
				zap.Duration("elapsed", now.Sub(started)))
			lastLog = now
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	// Everything up to the last step end is in the batch; what follows it
	// is a step that never finished. The checkpoint stays before it until
	// finish has superseded it, so a crash in between reads it again.
	cp := end
	if len(step) > 0 {
		cp = applied
	}
	if err := rs.Commit(state.Checkpoint{Offset: cp, At: r.clock.Now()}); err != nil {
		return res, err
	}
	res.Unfinished = len(step)
	r.m.Unfinished.Add(float64(len(step)))
	return res, r.finish(part, step, end)
}

// finish supersedes the records of an unfinished step with the current
// values of their keys (as a step the worker produces first).
func (r *Restorer) finish(part int32, unfinished []state.Change, end int64) error {
	cp := state.Checkpoint{Offset: end, At: r.clock.Now()}
	if len(unfinished) == 0 {
		rs := r.store.NewRestore(part)
		defer rs.Close()
		return rs.Commit(cp)
	}
	keys := make([][]byte, len(unfinished))
	for i, c := range unfinished {
		keys[i] = c.Key
	}
	return r.store.MirrorKeys(part, keys, cp)
}
