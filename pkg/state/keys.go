package state

import "encoding/binary"

// Key kinds under a partition prefix.
const (
	KindCustomer byte = 'c'
	KindOffset   byte = 'o'
	KindTimer    byte = 't'
	KindOutbox   byte = 'x'
	KindMeta     byte = 'm'
	// KindLocal rows describe this instance's copy of the partition (its
	// changelog checkpoint and writer id) and are never mirrored.
	KindLocal byte = 'k'
	// KindChangelog rows are changelog records not yet acknowledged by
	// the broker (rest = sequence uint64 BE); never mirrored.
	KindChangelog byte = 'l'
)

// Mirrored reports whether a key is a partition row that the changelog
// mirrors: every kind except the instance-local ones.
func Mirrored(key []byte) bool {
	if len(key) < prefixLen || key[0] != 'p' {
		return false
	}
	return key[5] != KindLocal && key[5] != KindChangelog
}

// KeyPartition returns the partition of a key, and false for a key that
// is not a partition row.
func KeyPartition(key []byte) (int32, bool) {
	if len(key) < prefixLen || key[0] != 'p' {
		return 0, false
	}
	return int32(binary.BigEndian.Uint32(key[1:5])), true
}

const prefixLen = 1 + 4 + 1

// Key returns 'p' | partition | kind | rest.
func Key(partition int32, kind byte, rest []byte) []byte {
	k := make([]byte, prefixLen, prefixLen+len(rest))
	k[0] = 'p'
	binary.BigEndian.PutUint32(k[1:5], uint32(partition))
	k[5] = kind
	return append(k, rest...)
}

// Bounds returns the [lower, upper) key range holding every row of one kind
// in a partition, for bounded iterators.
func Bounds(partition int32, kind byte) (lower, upper []byte) {
	lower = Key(partition, kind, nil)
	upper = Key(partition, kind+1, nil)
	return lower, upper
}

// PartitionBounds returns the key range of every row of a partition.
func PartitionBounds(partition int32) (lower, upper []byte) {
	lower = []byte{'p', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(lower[1:5], uint32(partition))
	upper = []byte{'p', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(upper[1:5], uint32(partition)+1)
	return lower, upper
}

// KeyRest strips the partition and kind prefix from a key.
func KeyRest(key []byte) []byte {
	if len(key) < prefixLen {
		return nil
	}
	return key[prefixLen:]
}
