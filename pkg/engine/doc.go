// Package engine runs spur's one way through, per partition:
//
//	decode/validate → identity → state + timers → rules → emit
//
// A Worker owns one task (partition p of every input topic): it is the only
// writer of that partition's customer records, timers, offsets and outbox.
// Each step — a batch of input records, or a set of due timers — is applied
// as one Pebble batch holding the state change, the timer rows, the input
// offsets and the output records (in the outbox). Only after the batch is
// committed are the outbox rows produced; they are deleted when the broker
// acknowledges them. After a crash the worker resumes from its stored offsets
// and re-sends the outbox, so state is applied exactly once and a trigger is
// never lost (a re-send carries the same trigger_id).
//
// Due timers enter the same worker as synthetic events, woken by the
// injected clock at the earliest deadline, so idle partitions still fire.
package engine
