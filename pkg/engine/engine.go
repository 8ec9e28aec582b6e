package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/sentiment"
	"github.com/spur-crm/spur/pkg/state"
)

// Producer sends output records. *kgo.Client satisfies it.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Config is what the engine needs to know of its topics and bounds.
type Config struct {
	ClickstreamTopic string
	OrdersTopic      string
	TriggersTopic    string
	DLQTopic         string
	// Partitions is the input topics' partition count, to find a
	// customer's partition for Inspect.
	Partitions int
	// Staleness: a trigger whose qualifying moment is older than this when
	// it would be emitted is recorded as stale instead (a coupon for a cart
	// abandoned days ago helps nobody).
	Staleness time.Duration
	// MaxTimersPerStep bounds how many due timers one step fires, so that a
	// backlog of overdue timers after a long outage interleaves with input.
	MaxTimersPerStep int
	// MaxWaitIdle bounds how long an idle worker sleeps before looking at its
	// timers again (timers armed by other paths, clock jumps).
	MaxWaitIdle time.Duration
	// MaxTaskIdle bounds how long a record is held back waiting for another
	// input topic of its task that is known to be behind (Kafka Streams'
	// max.task.idle.ms), so that one slow topic cannot stall the task.
	MaxTaskIdle time.Duration
	// MaxTaskIdleBehind bounds the wait for another input topic known to
	// hold older unread records (its end is past what was applied): they
	// are being fetched, and applying ahead of them would reorder the
	// task, so this bound is only a guard against a stalled fetch.
	MaxTaskIdleBehind time.Duration
	// AwaitInputEnds: a worker fires no timer until it has learned where
	// each input topic ends (the ingest loop reports them on assignment and
	// at every probe). A task taken over or restored holds armed timers
	// whose deadlines may have passed while it moved; the records that
	// reset or cancel them may still be unread. Workers driven directly
	// (spur test) leave it off.
	AwaitInputEnds bool
	// MaxTriggersPerCustomer caps the triggers (treatment, across
	// pipelines) a customer gets within CapWindow; 0 turns the cap off.
	// The trigger history behind it keeps the newest 16 outcomes.
	MaxTriggersPerCustomer int
	CapWindow              time.Duration
	// CustomerCacheBytes bounds the encoded customer records the workers
	// keep in memory (state.Cache), shared evenly by the input partitions;
	// 0 or negative: none.
	CustomerCacheBytes int
	// ProduceRetryBackoff is the pause before re-sending a failed output record.
	ProduceRetryBackoff time.Duration
	// ChangelogTopic, when set, is the compacted topic every step's writes
	// are mirrored to (see package changelog); the producer must send its
	// records to the partition they name (emit.ManualPartitions).
	ChangelogTopic string
	// StepLinger is how long a worker given a batch of fewer than
	// lingerRecords records waits for more before it steps: each step is
	// a synced commit, and caught up at a low rate a step per fetch is
	// a step of a few events. 0: no wait.
	StepLinger time.Duration
}

// Defaults.
const (
	DefaultStaleness        = time.Hour
	DefaultMaxTimersPerStep = 1000
)

func (c *Config) setDefaults() {
	if c.ClickstreamTopic == "" {
		c.ClickstreamTopic = "shop.clickstream"
	}
	if c.OrdersTopic == "" {
		c.OrdersTopic = "shop.orders"
	}
	if c.TriggersTopic == "" {
		c.TriggersTopic = "spur.triggers"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = "spur.dlq"
	}
	if c.Staleness <= 0 {
		c.Staleness = DefaultStaleness
	}
	if c.MaxTimersPerStep <= 0 {
		c.MaxTimersPerStep = DefaultMaxTimersPerStep
	}
	if c.MaxWaitIdle <= 0 {
		c.MaxWaitIdle = time.Second
	}
	if c.CapWindow <= 0 {
		c.CapWindow = 7 * 24 * time.Hour
	}
	if c.MaxTaskIdle <= 0 {
		c.MaxTaskIdle = 2 * time.Second
	}
	if c.MaxTaskIdleBehind <= 0 {
		c.MaxTaskIdleBehind = 30 * time.Second
	}
	if c.ProduceRetryBackoff <= 0 {
		c.ProduceRetryBackoff = 500 * time.Millisecond
	}
}

// Engine holds what every partition worker shares. It is safe for concurrent
// use; the per-partition state belongs to the workers.
type Engine struct {
	cfg       Config
	store     *state.Store
	dec       *event.Decoder
	pipes     atomic.Pointer[pipeSet]
	producer  Producer
	clock     clockwork.Clock
	log       *zap.Logger
	m         *Metrics
	sentiment *sentiment.Scorer

	// With transactions (WithTransactions).
	txnClient func(part int32) (*kgo.Client, error)
	txnHook   func(part int32, phase TxnPhase, outputs int) error
	tasksMu   sync.Mutex
	tasks     map[int32]*kgo.Client // opened by OpenTask, taken by StartWorker
}

type options struct {
	clock     clockwork.Clock
	log       *zap.Logger
	reg       prometheus.Registerer
	m         *Metrics
	txnClient func(part int32) (*kgo.Client, error)
	txnHook   func(part int32, phase TxnPhase, outputs int) error
}

// Option configures New.
type Option func(*options)

// WithClock injects the clock (default: real time).
func WithClock(c clockwork.Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger injects the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the engine's metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithMetrics shares already registered metrics (several engines in one
// process, as tests do).
func WithMetrics(m *Metrics) Option { return func(o *options) { o.m = m } }

// New builds an engine.
func New(cfg Config, store *state.Store, dec *event.Decoder, pipes []*pipeline.Pipeline, producer Producer, opts ...Option) (*Engine, error) {
	if store == nil || dec == nil || producer == nil {
		return nil, errors.New("engine: store, decoder and producer are required")
	}
	o := options{clock: clockwork.NewRealClock(), log: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.m == nil {
		reg := o.reg
		if reg == nil {
			reg = prometheus.NewRegistry()
		}
		o.m = NewMetrics(reg)
	}
	cfg.setDefaults()
	if o.txnClient != nil {
		if cfg.ChangelogTopic == "" {
			return nil, errors.New("engine: transactions need the changelog")
		}
		if !store.LocalOutbox() {
			return nil, errors.New("engine: transactions need a store whose outbox is not mirrored (state.WithLocalOutbox)")
		}
	}
	e := &Engine{
		cfg: cfg, store: store, dec: dec, producer: producer,
		clock: o.clock, log: o.log, m: o.m,
		sentiment: sentiment.New(),
		txnClient: o.txnClient, txnHook: o.txnHook, tasks: map[int32]*kgo.Client{},
	}
	e.SetPipelines(pipes)
	return e, nil
}

// pipeSet is the pipelines a step runs, and their counters.
type pipeSet struct {
	pipes    []*pipeline.Pipeline
	byName   map[string]*pipeline.Pipeline
	counters []*pipeline.Counter
	// groups maps a pipeline file's name to its counters.
	groups map[string][]*pipeline.Counter
	known  map[string]bool // qualified counter names
}

// SetPipelines replaces the running pipelines (a reload). Each worker picks
// the new set up at its next step; timers of a removed pipeline are dropped
// when they fall due, and its counters when a customer is next written.
func (e *Engine) SetPipelines(pipes []*pipeline.Pipeline) {
	ps := &pipeSet{pipes: pipes, byName: map[string]*pipeline.Pipeline{}, groups: map[string][]*pipeline.Counter{}, known: map[string]bool{}}
	for _, p := range pipes {
		ps.byName[p.Name] = p
		if _, ok := ps.groups[p.Group]; ok {
			continue
		}
		ps.groups[p.Group] = p.Counters
		for _, c := range p.Counters {
			ps.counters = append(ps.counters, c)
			ps.known[c.Name] = true
		}
	}
	e.pipes.Store(ps)
}

// Pipelines returns the running pipelines.
func (e *Engine) Pipelines() []*pipeline.Pipeline { return e.pipes.Load().pipes }

// Config returns the engine's configuration with defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Metrics returns the engine's metrics.
func (e *Engine) Metrics() *Metrics { return e.m }

// InputTopics returns the topics a task spans.
func (e *Engine) InputTopics() []string { return []string{e.cfg.ClickstreamTopic, e.cfg.OrdersTopic} }

// expectedPartition returns the partition Kafka's default partitioner
// (murmur2, as the Java client and franz-go use) assigns to key.
func (e *Engine) expectedPartition(key []byte, n int) int32 {
	return int32(murmur2(key)&0x7fffffff) % int32(n)
}

// murmur2 is Kafka's key hash (the Java client's Utils.murmur2), which the
// default partitioners of Kafka's clients, franz-go's and kafka-go's
// hashing partitioners use to place a keyed record: partition =
// (murmur2(key) & 0x7fffffff) % partitions.
func murmur2(b []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		b = b[4:]
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

func errorf(part int32, format string, args ...any) error {
	return fmt.Errorf("engine: partition %d: "+format, append([]any{part}, args...)...)
}

// ObserveEndProbe records the round trip of one read of the input topics'
// end offsets.
func (e *Engine) ObserveEndProbe(d time.Duration) { e.m.EndProbe.Observe(d.Seconds()) }

// ObserveFetchDelay records how long after its timestamp a fetched batch's
// first record was returned by a poll (negative, from a producer clock
// ahead of ours, counts as 0).
func (e *Engine) ObserveFetchDelay(d time.Duration) { e.m.FetchDelay.Observe(max(d, 0).Seconds()) }
