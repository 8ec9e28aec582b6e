package changelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/state"
)

// Record headers.
const (
	// HeaderID holds the writer id (8 bytes) and the record's sequence
	// number (uint64 big-endian).
	HeaderID = "spur-changelog"
	// HeaderStepEnd marks the last record of a step.
	HeaderStepEnd = "spur-step-end"
)

// stepEndKey is the key of step-end records; Pebble keys start with 'p',
// so it names no row. Compaction keeps its latest record only, which is
// all a restore needs (it applies everything before the last step end).
var stepEndKey = []byte("spur.step-end")

// ErrMalformed is returned for a changelog record spur did not write.
var ErrMalformed = errors.New("changelog: malformed record")

// record is a changelog record with its headers and id in one allocation:
// a record is made for every changed key of every step.
type record struct {
	rec kgo.Record
	hdr [2]kgo.RecordHeader
	id  [16]byte
}

// Record returns the Kafka record of a changelog row of partition part.
func Record(topic string, part int32, writer []byte, row state.ChangelogRow) *kgo.Record {
	b := new(record)
	id := append(b.id[:0], writer...)
	id = binary.BigEndian.AppendUint64(id, row.Seq)
	b.hdr[0] = kgo.RecordHeader{Key: HeaderID, Value: id}
	r := &b.rec
	r.Topic, r.Partition, r.Headers = topic, part, b.hdr[:1]
	switch {
	case row.StepEnd:
		r.Key, r.Value = stepEndKey, []byte{}
		b.hdr[1] = kgo.RecordHeader{Key: HeaderStepEnd, Value: []byte{}}
		r.Headers = b.hdr[:2]
	case row.Delete:
		r.Key = row.Key // a null value: a tombstone
	default:
		r.Key, r.Value = row.Key, row.Value
		if r.Value == nil {
			r.Value = []byte{} // an empty row is not a deletion
		}
	}
	return r
}

// Entry is a changelog record read back.
type Entry struct {
	state.Change
	Writer []byte
	Seq    uint64
	Offset int64
}

// Parse decodes a changelog record.
func Parse(r *kgo.Record) (Entry, error) {
	e := Entry{Offset: r.Offset}
	var id []byte
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderID:
			id = h.Value
		case HeaderStepEnd:
			e.StepEnd = true
		}
	}
	if len(id) < 8 {
		return Entry{}, fmt.Errorf("%w: offset %d has no %s header", ErrMalformed, r.Offset, HeaderID)
	}
	e.Writer = id[:len(id)-8]
	e.Seq = binary.BigEndian.Uint64(id[len(id)-8:])
	if e.StepEnd {
		if !bytes.Equal(r.Key, stepEndKey) {
			return Entry{}, fmt.Errorf("%w: step end at offset %d has key %q", ErrMalformed, r.Offset, r.Key)
		}
		return e, nil
	}
	e.Key = r.Key
	if r.Value == nil {
		e.Delete = true
	} else {
		e.Value = r.Value
	}
	return e, nil
}

// RecordSeq returns the sequence number a record made by Record carries.
func RecordSeq(r *kgo.Record) (uint64, bool) {
	for _, h := range r.Headers {
		if h.Key == HeaderID && len(h.Value) >= 8 {
			return binary.BigEndian.Uint64(h.Value[len(h.Value)-8:]), true
		}
	}
	return 0, false
}
