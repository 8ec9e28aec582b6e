package state

import "encoding/binary"

// Key kinds under a partition prefix.
const (
	KindCustomer byte = 'c'
	KindOffset   byte = 'o'
	KindTimer    byte = 't'
	KindOutbox   byte = 'x'
	KindMeta     byte = 'm'
)

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
