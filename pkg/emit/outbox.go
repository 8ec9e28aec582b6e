package emit

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Outbox record kinds.
const (
	OutTrigger    byte = 1
	OutDeadLetter byte = 2
)

// Out is one output record waiting in the outbox.
type Out struct {
	Kind    byte
	Topic   string
	Key     []byte
	Value   []byte
	Headers []kgo.RecordHeader
	// For triggers: rule, kind and the qualifying moment (latency metric).
	Rule        string
	TriggerKind string
	QualifiedAt time.Time
}

// ErrCorrupt is returned for an outbox row that cannot be decoded.
var ErrCorrupt = errors.New("emit: corrupt outbox row")

// outVersion is the encoding written; outVersion1 is still read.
const (
	outVersion  = 2
	outVersion1 = 1
)

// AppendBinary encodes o.
func (o *Out) AppendBinary(b []byte) []byte {
	b = append(b, outVersion, o.Kind)
	b = appendBytes(b, []byte(o.Topic))
	b = appendBytes(b, o.Key)
	b = appendBytes(b, o.Value)
	b = binary.AppendUvarint(b, uint64(len(o.Headers)))
	for _, h := range o.Headers {
		b = appendBytes(b, []byte(h.Key))
		b = appendBytes(b, h.Value)
	}
	b = appendBytes(b, []byte(o.Rule))
	b = appendBytes(b, []byte(o.TriggerKind))
	return binary.AppendVarint(b, o.QualifiedAt.UnixNano())
}

// UnmarshalBinary decodes an outbox row.
func (o *Out) UnmarshalBinary(b []byte) error {
	if len(b) < 2 || (b[0] != outVersion && b[0] != outVersion1) {
		return ErrCorrupt
	}
	// Version 1 rows (written before null and empty were told apart) may
	// still wait in an outbox after an upgrade: they read as non-null.
	readBytes := readBytes
	if b[0] == outVersion1 {
		readBytes = readBytesV1
	}
	*o = Out{Kind: b[1]}
	b = b[2:]
	var ok bool
	var s []byte
	if s, b, ok = readBytes(b); !ok {
		return ErrCorrupt
	}
	o.Topic = string(s)
	if o.Key, b, ok = readBytes(b); !ok {
		return ErrCorrupt
	}
	if o.Value, b, ok = readBytes(b); !ok {
		return ErrCorrupt
	}
	// Every header takes at least two bytes (two zero lengths); a count
	// beyond that is corrupt. A fixed cap would reject the dead letter of a
	// source record with many headers and stop the partition on restart.
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w)/2 {
		return ErrCorrupt
	}
	b = b[w:]
	for range n {
		var k, v []byte
		if k, b, ok = readBytes(b); !ok {
			return ErrCorrupt
		}
		if v, b, ok = readBytes(b); !ok {
			return ErrCorrupt
		}
		o.Headers = append(o.Headers, kgo.RecordHeader{Key: string(k), Value: v})
	}
	if s, b, ok = readBytes(b); !ok {
		return ErrCorrupt
	}
	o.Rule = string(s)
	if s, b, ok = readBytes(b); !ok {
		return ErrCorrupt
	}
	o.TriggerKind = string(s)
	ns, w := binary.Varint(b)
	if w <= 0 {
		return ErrCorrupt
	}
	o.QualifiedAt = time.Unix(0, ns).UTC()
	return nil
}

// Record returns the Kafka record to produce.
func (o *Out) Record() *kgo.Record {
	return &kgo.Record{Topic: o.Topic, Key: o.Key, Value: o.Value, Headers: o.Headers}
}

// appendBytes writes len+1, or 0 for nil: Kafka tells a null key or value
// (a tombstone) from an empty one, and a re-sent dead letter must keep it.
func appendBytes(b, s []byte) []byte {
	if s == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(s))+1)
	return append(b, s...)
}

func readBytes(b []byte) (s, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, false
	}
	b = b[w:]
	if n == 0 {
		return nil, b, true
	}
	n--
	if n > uint64(len(b)) {
		return nil, nil, false
	}
	return append([]byte{}, b[:n]...), b[n:], true
}

func readBytesV1(b []byte) (s, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	b = b[w:]
	return append([]byte{}, b[:n]...), b[n:], true
}
