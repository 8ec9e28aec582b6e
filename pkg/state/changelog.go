package state

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Change is one write the changelog mirrors: Key set to Value, Key deleted,
// or (StepEnd) the end of a step, after which the changes before it may be
// applied.
type Change struct {
	Key     []byte
	Value   []byte
	Delete  bool
	StepEnd bool
}

// ChangelogRow is a change waiting in the partition's changelog outbox to be
// produced, in sequence order: one changelog record.
type ChangelogRow struct {
	Seq uint64
	Change
	// KeyOnly marks a set read back from the store without its value: a
	// step keeps only the keys of its sets there (the values go to the
	// producer from memory), see ResumeChangelog.
	KeyOnly bool
	// Row is the sequence number keying the outbox row that holds the
	// record: a step's records share one row, keyed by the first. RowEnd
	// marks the row's last record; once the broker has acknowledged it
	// (and so every record before it), the row can go (AckChangelog).
	Row    uint64
	RowEnd bool
}

// ErrUnmirrorable is returned by a step holding a write the changelog cannot
// mirror (a range deletion).
var ErrUnmirrorable = errors.New("state: write cannot be mirrored to the changelog")

// Encoding of a changelog outbox row holding one record: op byte | uvarint
// key length | key | value. A step stores all its records in one row,
// opStep | uvarint count | count × (opSetKey or opDelete | uvarint key
// length | key), its step end implied after them: the sets without their
// values (the rows already hold them, and writing them twice doubled the
// bytes every step put through Pebble's WAL, memtables and compactions),
// and one row rather than one per record, because each row is a memtable
// insert and, once acknowledged, a tombstone every compaction carries down
// (one row per record cost the engine about a sixth of its CPU per event).
const (
	opSet     byte = 0
	opDelete  byte = 1
	opStepEnd byte = 2
	opSetKey  byte = 3 // a set whose value is the key's row
	opStep    byte = 4 // a step's records
)

func appendChange(b []byte, c Change) []byte {
	op := opSet
	switch {
	case c.StepEnd:
		op = opStepEnd
	case c.Delete:
		op = opDelete
	}
	b = appendEntry(b, op, c.Key)
	if op != opSet {
		return b
	}
	return append(b, c.Value...)
}

// appendStepHeader starts a step row of n records.
func appendStepHeader(b []byte, n int) []byte {
	return binary.AppendUvarint(append(b, opStep), uint64(n))
}

// appendStepEntry appends one record of a step row: the key of a set or
// deletion.
func appendStepEntry(b []byte, key []byte, del bool) []byte {
	if del {
		return appendEntry(b, opDelete, key)
	}
	return appendEntry(b, opSetKey, key)
}

// appendEntry appends op | uvarint key length | key.
func appendEntry(b []byte, op byte, key []byte) []byte {
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(key)))
	return append(b, key...)
}

// parseRow decodes the outbox row keyed by seq into its records.
func parseRow(seq uint64, v []byte) ([]ChangelogRow, error) {
	if len(v) < 2 || v[0] > opStep {
		return nil, ErrCorrupt
	}
	if v[0] != opStep {
		c, keyOnly, rest, err := parseEntry(v)
		if err != nil {
			return nil, err
		}
		if c.StepEnd || c.Delete || keyOnly {
			if len(rest) != 0 {
				return nil, ErrCorrupt
			}
		} else {
			c.Value = append([]byte{}, rest...)
		}
		return []ChangelogRow{{Seq: seq, Change: c, KeyOnly: keyOnly, Row: seq, RowEnd: true}}, nil
	}
	n, w := binary.Uvarint(v[1:])
	v = v[1+w:]
	if w <= 0 || n > uint64(len(v))/2 {
		return nil, ErrCorrupt
	}
	rows := make([]ChangelogRow, 0, n+1)
	for i := range n {
		c, keyOnly, rest, err := parseEntry(v)
		if err != nil || !(keyOnly || c.Delete) {
			return nil, ErrCorrupt
		}
		rows = append(rows, ChangelogRow{Seq: seq + i, Change: c, KeyOnly: keyOnly, Row: seq})
		v = rest
	}
	if len(v) != 0 {
		return nil, ErrCorrupt
	}
	return append(rows, ChangelogRow{Seq: seq + n, Change: Change{StepEnd: true}, Row: seq, RowEnd: true}), nil
}

// parseEntry decodes op | key of one record and returns what follows it.
func parseEntry(v []byte) (c Change, keyOnly bool, rest []byte, err error) {
	if len(v) < 2 || v[0] > opSetKey {
		return Change{}, false, nil, ErrCorrupt
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 || n > uint64(len(v)-1-w) {
		return Change{}, false, nil, ErrCorrupt
	}
	rest = v[1+w:]
	c = Change{Key: append([]byte(nil), rest[:n]...), Delete: v[0] == opDelete, StepEnd: v[0] == opStepEnd}
	return c, v[0] == opSetKey, rest[n:], nil
}

// Local row names.
var (
	localCheckpoint = []byte("checkpoint")
	localSeq        = []byte("changelog_seq")
	localWriter     = []byte("writer")
)

// WithChangelog makes the step mirror its writes: on Commit, every set and
// delete of a mirrored row, last write per key, is added to the changelog
// outbox in the same batch, as one row of records followed by a step end.
// A step whose writes are all instance-local adds nothing. The outbox keeps
// the keys of the sets only; Mirrored returns them with their values, for
// the producer.
func (st *Step) WithChangelog() *Step {
	st.mirror = true
	return st
}

// mirrorOp is the last write of one key in a step.
type mirrorOp struct {
	key, value []byte
	del        bool
}

// mirrorWrites adds the changelog rows of the batch's writes to it. It runs
// on every step, so it allocates per step, not per write: the rows' keys
// and values share one buffer, and repeated keys are found by hash.
func (st *Step) mirrorWrites() error {
	type op = mirrorOp
	var ops []op
	var index map[uint64]int // key hash → first op with that hash
	if sp := st.parts; sp != nil {
		ops, index = sp.ops[:0], sp.index
		clear(index)
		defer func() {
			clear(ops) // they point into the batch
			if len(index) > maxSpareIndex {
				index = nil // clearing it would cost the next steps
			}
			sp.ops, sp.index = ops[:0], index
		}()
	}
	var size int
	seed := st.s.hashSeed
	r := st.b.Reader()
	for {
		kind, k, v, ok, err := r.Next()
		if err != nil {
			return fmt.Errorf("state: read step batch: %w", err)
		}
		if !ok {
			break
		}
		var o op
		switch kind {
		case pebble.InternalKeyKindSet:
			o = op{key: k, value: v}
		case pebble.InternalKeyKindDelete, pebble.InternalKeyKindSingleDelete, pebble.InternalKeyKindDeleteSized:
			o = op{key: k, del: true}
		default:
			return fmt.Errorf("%w: key kind %v", ErrUnmirrorable, kind)
		}
		if !st.s.mirrors(o.key) {
			continue
		}
		if index == nil {
			index = make(map[uint64]int, st.b.Count())
		}
		h := maphash.Bytes(seed, o.key)
		if i, ok := index[h]; ok && bytes.Equal(ops[i].key, o.key) {
			size += len(o.value) - len(ops[i].value)
			ops[i] = o // the last write of a key wins
			continue
		} else if ok {
			// Another key with the same hash: compare with every op (rare).
			if j := slices.IndexFunc(ops, func(p op) bool { return bytes.Equal(p.key, o.key) }); j >= 0 {
				size += len(o.value) - len(ops[j].value)
				ops[j] = o
				continue
			}
		} else {
			index[h] = len(ops)
		}
		size += len(o.key) + len(o.value)
		ops = append(ops, o)
	}
	if len(ops) == 0 {
		// Only instance-local rows (acknowledgements of changelog records,
		// the checkpoint): losing them in a crash is repaired on restart,
		// which finds the records on the broker, so no sync is needed.
		st.localOnly = true
		return nil
	}
	seq, err := st.s.nextChangelogSeq(st.part)
	if err != nil {
		return err
	}
	// The batch's memory goes when it is closed; the rows outlive it until
	// the broker acknowledges them.
	arena := make([]byte, 0, size)
	st.mirrored = make([]ChangelogRow, 0, len(ops)+1)
	st.buf = appendStepHeader(st.buf[:0], len(ops))
	for i, o := range ops {
		n := len(arena)
		arena = append(arena, o.key...)
		c := Change{Key: arena[n:len(arena):len(arena)], Delete: o.del}
		if !o.del {
			n = len(arena)
			arena = append(arena, o.value...)
			c.Value = arena[n:len(arena):len(arena)]
		}
		st.mirrored = append(st.mirrored, ChangelogRow{Seq: seq + uint64(i), Change: c, Row: seq})
		st.buf = appendStepEntry(st.buf, o.key, o.del)
	}
	end := seq + uint64(len(ops))
	st.mirrored = append(st.mirrored, ChangelogRow{Seq: end, Change: Change{StepEnd: true}, Row: seq, RowEnd: true})
	if err := st.b.Set(changelogKey(st.part, seq), st.buf, nil); err != nil {
		return err
	}
	return setNextChangelogSeq(st.b, st.part, end+1)
}

func changelogKey(part int32, seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return Key(part, KindChangelog, k[:])
}

// Mirrored returns the changelog rows the committed step added, in order;
// none unless the step was made WithChangelog.
func (st *Step) Mirrored() []ChangelogRow { return st.mirrored }

// addChangelogRow adds a row holding one record, with its value.
func addChangelogRow(b *pebble.Batch, part int32, seq *uint64, c Change, buf *[]byte) error {
	*buf = appendChange((*buf)[:0], c)
	err := b.Set(changelogKey(part, *seq), *buf, nil)
	*seq++
	return err
}

// endChangelogStep adds the step-end row and stores the next sequence.
func endChangelogStep(b *pebble.Batch, part int32, seq uint64, buf *[]byte) error {
	if err := addChangelogRow(b, part, &seq, Change{StepEnd: true}, buf); err != nil {
		return err
	}
	return setNextChangelogSeq(b, part, seq)
}

func setNextChangelogSeq(b *pebble.Batch, part int32, seq uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], seq)
	return b.Set(Key(part, KindLocal, localSeq), v[:], nil)
}

func (s *Store) nextChangelogSeq(part int32) (uint64, error) {
	v, closer, err := s.db.Get(Key(part, KindLocal, localSeq))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("state: changelog sequence: %w", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
}

// ChangelogRows returns the records of the partition's changelog outbox,
// in order: those not yet acknowledged by the broker, and before them those
// of a step acknowledged only in part. The sets steps added are KeyOnly.
func (s *Store) ChangelogRows(part int32) ([]ChangelogRow, error) {
	lo, hi := Bounds(part, KindChangelog)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var rows []ChangelogRow
	for it.First(); it.Valid(); it.Next() {
		rest := KeyRest(it.Key())
		if len(rest) != 8 {
			return nil, fmt.Errorf("state: changelog key %q: %w", it.Key(), ErrCorrupt)
		}
		rs, err := parseRow(binary.BigEndian.Uint64(rest), it.Value())
		if err != nil {
			return nil, fmt.Errorf("state: changelog row %q: %w", it.Key(), err)
		}
		rows = append(rows, rs...)
	}
	return rows, it.Error()
}

// ResumeChangelog returns the partition's unacknowledged changelog rows
// ready to produce, for a worker starting on rows a previous run left. The
// values of the sets steps added were kept in memory only, so when there
// are any, the rows are replaced, in one synced batch, by a single step
// holding the current value of each of their keys (a deletion for a key
// without a row) under new sequence numbers. That step supersedes what the
// old rows said. The broker holds none of them, except perhaps the first
// records of their first step: a restore drops those from the outbox
// (ownTail) before the worker starts, and they stay on the topic without
// their step end, so a restore applies them only together with the new step,
// whose values are current for every key changed since. Any other key's
// last record on the topic is already its current value: rows are deleted
// only once acknowledged, and acknowledgements come in order. The new step
// is one step however many rows there were: after a long broker outage it
// can be large, and a restore holds a step's records in memory until its
// end (as it does for a Snapshot). Rows all carrying values (a restore's
// MirrorKeys or Snapshot) are returned as they are.
func (s *Store) ResumeChangelog(part int32) ([]ChangelogRow, error) {
	rows, err := s.ChangelogRows(part)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(rows, func(r ChangelogRow) bool { return r.KeyOnly }) {
		return rows, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	keys := make([][]byte, 0, len(rows))
	for _, r := range rows {
		if !r.StepEnd {
			keys = append(keys, r.Key)
		}
	}
	if err := deleteChangelogRows(b, part, rows); err != nil {
		return nil, err
	}
	out, err := s.addCurrentStep(b, part, keys)
	if err != nil {
		return nil, err
	}
	return out, b.Commit(pebble.Sync)
}

// addCurrentStep adds to b, as one changelog step from the partition's next
// sequence number, the current value of each distinct key in keys, in order
// of first appearance (a deletion for a key without a row), and returns the
// rows it added.
func (s *Store) addCurrentStep(b *pebble.Batch, part int32, keys [][]byte) ([]ChangelogRow, error) {
	seq, err := s.nextChangelogSeq(part)
	if err != nil {
		return nil, err
	}
	var rows []ChangelogRow
	var buf []byte
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		c := Change{Key: k}
		v, closer, err := s.db.Get(k)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			c.Delete = true
		case err != nil:
			return nil, err
		default:
			c.Value = append([]byte{}, v...)
			closer.Close()
		}
		rows = append(rows, ChangelogRow{Seq: seq, Change: c, Row: seq, RowEnd: true})
		if err := addChangelogRow(b, part, &seq, c, &buf); err != nil {
			return nil, err
		}
	}
	rows = append(rows, ChangelogRow{Seq: seq, Change: Change{StepEnd: true}, Row: seq, RowEnd: true})
	return rows, endChangelogStep(b, part, seq, &buf)
}

// Checkpoint is how far a partition's local rows reflect its changelog
// topic partition: every record before Offset is applied (or was produced
// from these rows), as of At.
type Checkpoint struct {
	Offset int64
	At     time.Time
}

// Checkpoint returns the partition's changelog checkpoint; false when the
// partition has never been restored nor mirrored here.
func (s *Store) Checkpoint(part int32) (Checkpoint, bool, error) {
	v, closer, err := s.db.Get(Key(part, KindLocal, localCheckpoint))
	if errors.Is(err, pebble.ErrNotFound) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, err
	}
	defer closer.Close()
	if len(v) != 16 {
		return Checkpoint{}, false, fmt.Errorf("state: changelog checkpoint: %w", ErrCorrupt)
	}
	return Checkpoint{Offset: int64(binary.BigEndian.Uint64(v)), At: time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC()}, true, nil
}

func setCheckpoint(b *pebble.Batch, part int32, cp Checkpoint) error {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:], uint64(cp.Offset))
	binary.BigEndian.PutUint64(v[8:], uint64(cp.At.UnixNano()))
	return b.Set(Key(part, KindLocal, localCheckpoint), v[:], nil)
}

// AckChangelog deletes the outbox rows of records the broker acknowledged,
// the first of the partition's outbox ending on a RowEnd, and moves the
// checkpoint to cp (the offset after the last of them). A row whose end is
// not acknowledged yet must stay, with the checkpoint before its records:
// acknowledge the records of a step together.
func (st *Step) AckChangelog(acked []ChangelogRow, cp Checkpoint) error {
	if len(acked) == 0 {
		return nil
	}
	if !acked[len(acked)-1].RowEnd {
		return fmt.Errorf("state: acknowledging changelog record %d of partition %d, before the end of its row", acked[len(acked)-1].Seq, st.part)
	}
	if err := deleteChangelogRows(st.b, st.part, acked); err != nil {
		return err
	}
	return setCheckpoint(st.b, st.part, cp)
}

// deleteChangelogRows deletes the outbox rows whose last record is among
// rows.
func deleteChangelogRows(b *pebble.Batch, part int32, rows []ChangelogRow) error {
	for _, r := range rows {
		if !r.RowEnd {
			continue
		}
		if err := b.Delete(changelogKey(part, r.Row), nil); err != nil {
			return err
		}
	}
	return nil
}

// ChangelogWriter returns the id this instance's copy of the partition
// writes its changelog records under, creating it on first use. A wiped
// partition gets a new one.
func (s *Store) ChangelogWriter(part int32) ([]byte, error) {
	k := Key(part, KindLocal, localWriter)
	v, closer, err := s.db.Get(k)
	if err == nil {
		defer closer.Close()
		return append([]byte(nil), v...), nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return nil, err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	if err := s.db.Set(k, id, pebble.Sync); err != nil {
		return nil, err
	}
	return id, nil
}

// HasState reports whether the partition holds any mirrored row.
func (s *Store) HasState(part int32) (bool, error) {
	lo, hi := PartitionBounds(part)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if s.mirrors(it.Key()) {
			return true, nil
		}
	}
	return false, it.Error()
}

// WipePartition deletes every row of a partition, local ones included.
func (s *Store) WipePartition(part int32) error {
	lo, hi := PartitionBounds(part)
	return s.db.DeleteRange(lo, hi, pebble.Sync)
}

// Restore applies changes read from the changelog to a partition. It is
// not safe for concurrent use, and nothing else may write the partition
// meanwhile.
type Restore struct {
	s    *Store
	part int32
	b    *pebble.Batch
}

// NewRestore starts restoring partition part.
func (s *Store) NewRestore(part int32) *Restore {
	return &Restore{s: s, part: part, b: s.db.NewBatch()}
}

// Apply adds a set or delete of a mirrored row of the partition.
func (r *Restore) Apply(c Change) error {
	if p, ok := KeyPartition(c.Key); !ok || p != r.part || !Mirrored(c.Key) || c.StepEnd {
		return fmt.Errorf("state: changelog record %q does not belong to partition %d: %w", c.Key, r.part, ErrCorrupt)
	}
	if c.Delete {
		return r.b.Delete(c.Key, nil)
	}
	return r.b.Set(c.Key, c.Value, nil)
}

// DropChangelogRows deletes the first n records of rows (the partition's
// ChangelogRows), found on the broker already. When they end inside a
// step's row, what remains of that row is kept, under its first sequence.
func (r *Restore) DropChangelogRows(rows []ChangelogRow, n int) error {
	if err := deleteChangelogRows(r.b, r.part, rows[:n]); err != nil {
		return err
	}
	if n == 0 || rows[n-1].RowEnd {
		return nil
	}
	if err := r.b.Delete(changelogKey(r.part, rows[n-1].Row), nil); err != nil {
		return err
	}
	rest := rows[n:]
	end := slices.IndexFunc(rest, func(c ChangelogRow) bool { return c.RowEnd })
	if end < 0 || !rest[end].StepEnd {
		return fmt.Errorf("state: changelog row %d of partition %d has no step end: %w", rows[n-1].Row, r.part, ErrCorrupt)
	}
	b := appendStepHeader(nil, end)
	for _, c := range rest[:end] {
		b = appendStepEntry(b, c.Key, c.Delete)
	}
	return r.b.Set(changelogKey(r.part, rest[0].Seq), b, nil)
}

// DropOutboxBelow deletes the partition's outbox rows numbered below seq:
// with a local outbox (WithLocalOutbox), those whose records the changelog
// shows committed, in the same Kafka transaction as their step.
func (r *Restore) DropOutboxBelow(seq uint64) error {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	lo, _ := Bounds(r.part, KindOutbox)
	return r.b.DeleteRange(lo, Key(r.part, KindOutbox, k[:]), nil)
}

// Size is the size of the changes not yet committed, in bytes.
func (r *Restore) Size() int { return r.b.Len() }

// Commit writes the changes applied so far with checkpoint cp, synced.
func (r *Restore) Commit(cp Checkpoint) error {
	if err := setCheckpoint(r.b, r.part, cp); err != nil {
		return err
	}
	if err := r.b.Commit(pebble.Sync); err != nil {
		return err
	}
	r.b.Close()
	r.b = r.s.db.NewBatch()
	return nil
}

// Close discards what was not committed.
func (r *Restore) Close() { r.b.Close() }

// MirrorKeys adds to the changelog outbox, as one step, the current value
// of each distinct key (a deletion for a key without a row), and sets
// checkpoint cp.
// A restore uses it to supersede the records of a step whose end never
// reached the changelog.
func (s *Store) MirrorKeys(part int32, keys [][]byte, cp Checkpoint) error {
	b := s.db.NewBatch()
	defer b.Close()
	if _, err := s.addCurrentStep(b, part, keys); err != nil {
		return err
	}
	if err := setCheckpoint(b, part, cp); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// Snapshot adds every mirrored row of the partition to the changelog outbox
// as one step and sets checkpoint cp: it seeds a changelog that lacks the
// partition's history (state kept before the changelog was turned on). It
// returns the number of rows.
func (s *Store) Snapshot(part int32, cp Checkpoint) (int, error) {
	lo, hi := PartitionBounds(part)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	seq, err := s.nextChangelogSeq(part)
	if err != nil {
		return 0, err
	}
	var buf []byte
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if !s.mirrors(it.Key()) {
			continue
		}
		if err := addChangelogRow(b, part, &seq, Change{Key: it.Key(), Value: it.Value()}, &buf); err != nil {
			return 0, err
		}
		n++
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	if err := endChangelogStep(b, part, seq, &buf); err != nil {
		return 0, err
	}
	if err := setCheckpoint(b, part, cp); err != nil {
		return 0, err
	}
	return n, b.Commit(pebble.Sync)
}
