// Package state keeps spur's per-partition state in Pebble: customer
// records, the input offsets a partition has applied, and the outbox of
// output records not yet acknowledged by the broker.
//
// Every key starts with the partition (task) it belongs to, so one Pebble
// database serves all partitions of an instance and a partition's rows can be
// scanned, restored or dropped with bounded iterators. The layout is
//
//	'p' | partition uint32 BE | kind byte | rest
//
// with kind 'c' (customer record, rest = subject id), 'o' (input offset, rest =
// topic), 't' (timer, see package timer), 'x' (outbox, rest = sequence uint64
// BE) and 'm' (partition metadata).
//
// A Step collects one processing step's changes (customer records, timers,
// offsets, outbox rows) and commits them as one Pebble batch, which is what
// makes state applied exactly once: an input offset is stored if and only if
// its effects are.
package state
