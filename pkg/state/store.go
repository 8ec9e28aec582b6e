package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// Store is spur's Pebble database. It is safe for concurrent use; each
// partition's rows have a single writer (the partition's worker).
type Store struct {
	db          *pebble.DB
	sync        bool
	localOutbox bool
	metrics     *storeMetrics
	hashSeed    maphash.Seed // for finding a step's repeated keys

	spareMu sync.Mutex
	spare   map[int32]*stepParts // per partition; see stepParts
}

// stepParts are what one step of a partition leaves to the next: the
// batch, with the buffer it grew to, the encoding buffer, the maps, and
// the customer records. Allocating them afresh took a third of the bytes
// the engine allocated at its maximum (the batch alone regrew from 1 KiB
// every step, doubling: 16 %), and the collector's work with them.
type stepParts struct {
	b       *pebble.Batch
	buf     []byte
	dirty   map[string]*Customer
	deleted map[string]bool
	free    []*Customer
	ops     []mirrorOp     // mirrorWrites'
	index   map[uint64]int // mirrorWrites'
}

// Bounds of what a partition's steps keep for the next one.
const (
	maxSpareBatchBytes = 2 << 20
	maxSpareCustomers  = 1024
	maxSpareIndex      = 4096
)

type options struct {
	log         pebble.Logger
	fs          vfs.FS
	sync        bool
	cacheSize   int64
	tuning      Tuning
	localOutbox bool
}

// Tuning is the Pebble settings spur exposes. The defaults suit its
// workload: point reads and rewrites of customer records (a Bloom filter
// spares the disk reads of customers not seen before) and room before
// Pebble stops writes under compaction debt (spur's consumer pauses
// meanwhile, so memory does not grow). A 32 MiB memtable keeps most
// rewrites of a customer active in a session, and the changelog outbox rows
// deleted once acknowledged, out of the sstables: at 25 % load it cut the
// engine's CPU by a fifth and the trigger latency p99 from 130–330 ms to
// about 80 ms against Pebble's default 4 MiB (docs/BENCHMARKS.md).
type Tuning struct {
	MemTableMB            int // memtable size (default 32)
	L0CompactionThreshold int // L0 read amplification that starts a compaction (default 4)
	L0StopWritesThreshold int // L0 sublevels at which writes stop until compactions catch up (default 24)
	MaxCompactions        int // concurrent compactions (default 2)
	BloomBitsPerKey       int // Bloom filter bits per key on every level; -1: none (default 10)
	// Compression of sstable blocks: "snappy" (the default), "fastest"
	// (MinLZ, which needs the newest table format: a store opened with it
	// cannot be read by an older spur), "none".
	Compression string
}

// DefaultTuning is what Open uses for the fields WithTuning leaves zero.
var DefaultTuning = Tuning{MemTableMB: 32, L0CompactionThreshold: 4, L0StopWritesThreshold: 24, MaxCompactions: 2, BloomBitsPerKey: 10, Compression: "snappy"}

// WithTuning sets Pebble's tuning; zero fields keep their defaults.
func WithTuning(t Tuning) Option { return func(o *options) { o.tuning = t } }

// resolve fills t's zero fields from DefaultTuning.
func (t Tuning) resolve() Tuning {
	d := DefaultTuning
	if t.MemTableMB <= 0 {
		t.MemTableMB = d.MemTableMB
	}
	if t.L0CompactionThreshold <= 0 {
		t.L0CompactionThreshold = d.L0CompactionThreshold
	}
	if t.L0StopWritesThreshold <= 0 {
		t.L0StopWritesThreshold = d.L0StopWritesThreshold
	}
	if t.MaxCompactions <= 0 {
		t.MaxCompactions = d.MaxCompactions
	}
	if t.BloomBitsPerKey == 0 {
		t.BloomBitsPerKey = d.BloomBitsPerKey
	}
	if t.Compression == "" {
		t.Compression = d.Compression
	}
	return t
}

// memtableReserve is what the memtables of size mb take from the block
// cache in steady state: the mutable one, and a second (being flushed, or
// kept for reuse). A batch larger than half a memtable (a restore commits
// 16 MiB at a time) is reserved too while it waits to be flushed, and
// takes its room from the blocks meanwhile.
func memtableReserve(mb int) int64 { return 2 * int64(mb) << 20 }

// Option configures Open.
type Option func(*options)

// WithFS opens the store on fs (vfs.NewMem() in tests).
func WithFS(fs vfs.FS) Option { return func(o *options) { o.fs = fs } }

// WithLogger routes Pebble's logs to l (its informational lines at debug
// level). By default they are discarded.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) { o.log = pebbleLogger{l.Sugar()} }
}

type pebbleLogger struct{ s *zap.SugaredLogger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.s.Debugf(format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.s.Errorf(format, args...) }
func (p pebbleLogger) Fatalf(format string, args ...any) { p.s.Fatalf(format, args...) }

// WithSync(false) commits steps without waiting for the WAL to reach the
// operating system. Pebble then writes the WAL from a background goroutine,
// so a crash of the process (kill -9) can lose the last steps while their
// outputs may already be on the broker: only for tests and benchmarks of
// what syncing costs. The default syncs every step's commit; a step groups
// many records, which amortises the fsync.
func WithSync(sync bool) Option { return func(o *options) { o.sync = sync } }

// WithCacheSize bounds Pebble's block cache in bytes. The memtables come on
// top: Pebble charges them to the cache it is given, so Open gives it room
// for two more.
func WithCacheSize(n int64) Option { return func(o *options) { o.cacheSize = n } }

// WithLocalOutbox keeps outbox rows out of the changelog. With Kafka
// transactions a step's output records commit in the same transaction as
// its changelog records, so the changelog never needs to carry them: a copy
// restored from it has nothing to re-send, and the committed value of the
// outbox sequence (a mirrored meta row) tells which of a copy's own outbox
// rows were delivered (see DropOutboxBelow).
func WithLocalOutbox() Option { return func(o *options) { o.localOutbox = true } }

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{sync: true, cacheSize: 64 << 20, log: pebbleLogger{zap.NewNop().Sugar()}}
	for _, opt := range opts {
		opt(&o)
	}
	sm := newStoreMetrics()
	po := &pebble.Options{FS: o.fs, Logger: o.log, EventListener: sm.listener()}
	t := o.tuning.resolve()
	// Pebble reserves each memtable's size in the block cache (a mutable
	// one, and another while it flushes): with 32 MiB memtables a 64 MiB
	// cache held no block at all, and every read went to the files.
	cache := pebble.NewCache(o.cacheSize + memtableReserve(t.MemTableMB))
	defer cache.Unref()
	po.Cache = cache
	po.MemTableSize = uint64(t.MemTableMB) << 20
	po.L0CompactionThreshold = t.L0CompactionThreshold
	po.L0StopWritesThreshold = max(t.L0StopWritesThreshold, t.L0CompactionThreshold+1)
	maxC := t.MaxCompactions
	po.CompactionConcurrencyRange = func() (int, int) { return 1, maxC }
	if t.BloomBitsPerKey > 0 {
		for i := range po.Levels {
			po.Levels[i].FilterPolicy = bloom.FilterPolicy(t.BloomBitsPerKey)
		}
	}
	switch t.Compression {
	case "snappy":
	case "fastest":
		po.FormatMajorVersion = pebble.FormatNewest
		po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionFastest })
	case "none":
		po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	default:
		return nil, fmt.Errorf("state: unknown compression %q (snappy, fastest, none)", t.Compression)
	}
	po.EnsureDefaults()
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	return &Store{db: db, sync: o.sync, localOutbox: o.localOutbox, metrics: sm, hashSeed: maphash.MakeSeed()}, nil
}

// LocalOutbox reports whether outbox rows are kept out of the changelog
// (WithLocalOutbox).
func (s *Store) LocalOutbox() bool { return s.localOutbox }

// mirrors reports whether the changelog mirrors key.
func (s *Store) mirrors(key []byte) bool {
	if !Mirrored(key) {
		return false
	}
	return !s.localOutbox || key[5] != KindOutbox
}

// Close closes the database.
func (s *Store) Close() error {
	s.spareMu.Lock()
	for part, sp := range s.spare {
		sp.b.Close()
		delete(s.spare, part)
	}
	s.spareMu.Unlock()
	return s.db.Close()
}

// DB exposes the database for packages that keep their own rows under a
// partition prefix (timers) and for metrics.
func (s *Store) DB() *pebble.DB { return s.db }

// WriteOptions are the options every step commits with.
func (s *Store) WriteOptions() *pebble.WriteOptions {
	if s.sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// Offsets returns, per input topic, the next offset partition part must
// consume: everything before it has been applied.
func (s *Store) Offsets(part int32) (map[string]int64, error) {
	lo, hi := Bounds(part, KindOffset)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make(map[string]int64)
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if len(v) != 8 {
			return nil, fmt.Errorf("state: offset row %q: %w", it.Key(), ErrCorrupt)
		}
		out[string(KeyRest(it.Key()))] = int64(binary.BigEndian.Uint64(v))
	}
	return out, it.Error()
}

// Customer reads a committed customer record into c. It reports false for a
// customer never seen (c is then zero).
func (s *Store) Customer(part int32, id string, c *Customer) (bool, error) {
	return s.customer(part, id, c, nil)
}

// customer is Customer with recent's array as the record's Recent
// (Customer.unmarshal); c.Recent is recent when the customer is unseen.
func (s *Store) customer(part int32, id string, c *Customer, recent []Recent) (bool, error) {
	v, closer, err := s.db.Get(Key(part, KindCustomer, []byte(id)))
	if errors.Is(err, pebble.ErrNotFound) {
		*c = Customer{Recent: recent[:0]}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	if err := c.unmarshal(v, recent); err != nil {
		return false, fmt.Errorf("customer %q: %w", id, err)
	}
	return true, nil
}

// OutboxRow is one output record not yet acknowledged by the broker.
type OutboxRow struct {
	Seq   uint64
	Value []byte
}

// Outbox returns the partition's unacknowledged output records in order.
func (s *Store) Outbox(part int32) ([]OutboxRow, error) {
	lo, hi := Bounds(part, KindOutbox)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var rows []OutboxRow
	for it.First(); it.Valid(); it.Next() {
		rest := KeyRest(it.Key())
		if len(rest) != 8 {
			return nil, fmt.Errorf("state: outbox key %q: %w", it.Key(), ErrCorrupt)
		}
		rows = append(rows, OutboxRow{Seq: binary.BigEndian.Uint64(rest), Value: append([]byte(nil), it.Value()...)})
	}
	return rows, it.Error()
}

// OutboxSeqKey is the meta row holding a partition's next outbox sequence
// number. It is mirrored: with a local outbox (WithLocalOutbox) its
// committed value in the changelog bounds the outbox rows delivered.
func OutboxSeqKey(part int32) []byte { return Key(part, KindMeta, []byte("outbox_seq")) }

// NextOutboxSeq returns the sequence number after the partition's last outbox
// row, or after the last one it ever wrote (kept in metadata) if larger.
func (s *Store) NextOutboxSeq(part int32) (uint64, error) {
	v, closer, err := s.db.Get(OutboxSeqKey(part))
	var seq uint64
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return 0, err
	default:
		if len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	}
	return seq, nil
}

// CountKind counts a partition's rows of one kind (for gauges and tests).
func (s *Store) CountKind(part int32, kind byte) (int, error) {
	lo, hi := Bounds(part, kind)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n, it.Error()
}

// Step collects the changes of one processing step of one partition and
// commits them atomically. Customer records loaded through the step are
// cached until Commit, so several events of one customer in a step decode and
// encode the record once. A Step is not safe for concurrent use.
type Step struct {
	s       *Store
	part    int32
	b       *pebble.Batch
	dirty   map[string]*Customer
	deleted map[string]bool
	buf     []byte
	outSeq  uint64
	seqSet  bool
	cache   *Cache
	mirror  bool // see WithChangelog
	// Set by the commit of a mirroring step.
	mirrored  []ChangelogRow
	localOnly bool
	parts     *stepParts // taken from the partition's last step; see end
}

// NewStep starts a step for partition part.
func (s *Store) NewStep(part int32) *Step {
	s.spareMu.Lock()
	sp := s.spare[part]
	delete(s.spare, part)
	s.spareMu.Unlock()
	if sp == nil {
		sp = &stepParts{
			b:     s.db.NewBatch(pebble.WithMaxRetainedSizeBytes(maxSpareBatchBytes)),
			dirty: make(map[string]*Customer), deleted: make(map[string]bool),
		}
	}
	return &Step{s: s, part: part, b: sp.b, dirty: sp.dirty, deleted: sp.deleted, buf: sp.buf, parts: sp}
}

// newCustomer is an empty record for the step, with recent as its Recent.
func (st *Step) newCustomer(recent []Recent) *Customer {
	if n := len(st.parts.free); n > 0 {
		c := st.parts.free[n-1]
		st.parts.free = st.parts.free[:n-1]
		c.Recent = recent
		return c
	}
	return &Customer{Recent: recent}
}

// end gives the recent-event arrays of the step's records back to the
// cache (the records are encoded by now, or dropped, and nothing else
// refers to their Recent), and leaves the step's parts to the partition's
// next step: the batch emptied (or closed, when it failed to commit), the
// records cleared.
func (st *Step) end(batchOK bool) {
	sp := st.parts
	st.parts = nil
	keep := sp != nil && batchOK
	for id, c := range st.dirty {
		st.cache.giveRecent(c.Recent)
		c.Recent = nil
		if keep {
			if len(sp.free) < maxSpareCustomers {
				*c = Customer{}
				sp.free = append(sp.free, c)
			}
			delete(st.dirty, id)
		}
	}
	if sp == nil {
		return
	}
	if !batchOK {
		st.b.Close()
		return
	}
	st.b.Reset()
	clear(st.deleted)
	sp.buf = st.buf[:0]
	st.s.spareMu.Lock()
	if st.s.spare == nil {
		st.s.spare = make(map[int32]*stepParts)
	}
	if _, ok := st.s.spare[st.part]; ok {
		st.b.Close()
	} else {
		st.s.spare[st.part] = sp
	}
	st.s.spareMu.Unlock()
}

// WithCache makes the step read customers through c and put the records it
// commits into it. The cache must belong to the step's partition, and every
// write of the partition's customers must go through steps that use it.
func (st *Step) WithCache(c *Cache) *Step {
	st.cache = c
	return st
}

// Partition returns the step's partition.
func (st *Step) Partition() int32 { return st.part }

// Batch is the underlying batch, for rows other packages own (timers).
func (st *Step) Batch() *pebble.Batch { return st.b }

// Customer returns the record of id for modification, loading it on first
// use in this step. The returned record is written back on Commit.
func (st *Step) Customer(id string) (*Customer, error) {
	if c, ok := st.dirty[id]; ok {
		return c, nil
	}
	recent := st.cache.takeRecent()
	c := st.newCustomer(recent)
	if !st.deleted[id] {
		if enc, ok := st.cache.get(id); ok {
			if err := c.unmarshal(enc, recent); err != nil {
				st.cache.giveRecent(recent)
				return nil, fmt.Errorf("customer %q: %w", id, err)
			}
			st.s.metrics.reads[readCache].Add(1)
			st.dirty[id] = c
			return c, nil
		}
		found, err := st.s.customer(st.part, id, c, recent)
		if err != nil {
			st.cache.giveRecent(recent)
			return nil, err
		}
		if found {
			st.s.metrics.reads[readStore].Add(1)
		} else {
			st.s.metrics.reads[readAbsent].Add(1)
		}
	}
	delete(st.deleted, id)
	st.dirty[id] = c
	return c, nil
}

// DeleteCustomer erases a customer's record (forget).
func (st *Step) DeleteCustomer(id string) {
	if c, ok := st.dirty[id]; ok {
		st.cache.giveRecent(c.Recent)
		c.Recent = nil
	}
	delete(st.dirty, id)
	st.deleted[id] = true
}

// Deleted reports whether the step erased id's record and nothing has
// loaded it since. Customer would start a new, empty record for it, which
// the step would then commit: a reader with no event of its own to apply
// (a due timer) must skip the customer instead.
func (st *Step) Deleted(id string) bool { return st.deleted[id] }

// SetOffset records that topic's records before next are applied.
func (st *Step) SetOffset(topic string, next int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(next))
	return st.b.Set(Key(st.part, KindOffset, []byte(topic)), v[:], nil)
}

// AddOutbox appends an output record to the outbox and returns its sequence
// number, which the caller uses to acknowledge it later.
func (st *Step) AddOutbox(value []byte) (uint64, error) {
	if !st.seqSet {
		seq, err := st.s.NextOutboxSeq(st.part)
		if err != nil {
			return 0, err
		}
		st.outSeq, st.seqSet = seq, true
	}
	seq := st.outSeq
	st.outSeq++
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	if err := st.b.Set(Key(st.part, KindOutbox, k[:]), value, nil); err != nil {
		return 0, err
	}
	return seq, nil
}

// AckOutbox deletes acknowledged outbox rows.
func (st *Step) AckOutbox(seqs ...uint64) error {
	for _, seq := range seqs {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		if err := st.b.Delete(Key(st.part, KindOutbox, k[:]), nil); err != nil {
			return err
		}
	}
	return nil
}

// Empty reports whether the step has nothing to commit.
func (st *Step) Empty() bool {
	return st.b.Empty() && len(st.dirty) == 0 && len(st.deleted) == 0
}

// Commit writes every change of the step in one batch. The records
// Customer returned must not be used after it: the partition's next step
// reuses them, and the batch (see stepParts).
func (st *Step) Commit() error {
	err := st.commit()
	if err != nil {
		st.forget()
	}
	st.end(err == nil)
	return err
}

// forget drops the step's records from the cache, where commit put them
// before the batch failed to commit.
func (st *Step) forget() {
	for id := range st.dirty {
		st.cache.remove(id)
	}
	for id := range st.deleted {
		st.cache.remove(id)
	}
}

func (st *Step) commit() error {
	for id, c := range st.dirty {
		st.buf = c.AppendBinary(st.buf[:0])
		if err := st.b.Set(Key(st.part, KindCustomer, []byte(id)), st.buf, nil); err != nil {
			return err
		}
		st.cache.put(id, st.buf)
	}
	for id := range st.deleted {
		if err := st.b.Delete(Key(st.part, KindCustomer, []byte(id)), nil); err != nil {
			return err
		}
		st.cache.remove(id)
	}
	if st.seqSet {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], st.outSeq)
		if err := st.b.Set(OutboxSeqKey(st.part), v[:], nil); err != nil {
			return err
		}
	}
	if st.mirror {
		if err := st.mirrorWrites(); err != nil {
			return err
		}
	}
	if st.b.Empty() {
		return nil
	}
	opts := st.s.WriteOptions()
	if st.localOnly {
		opts = pebble.NoSync
	}
	if err := st.b.Commit(opts); err != nil {
		return err
	}
	if opts.Sync {
		st.s.metrics.observeCommit(st.b.CommitStats())
	}
	return nil
}

// Abort discards the step. The records Customer returned must not be used
// after it.
func (st *Step) Abort() {
	st.end(true)
}
