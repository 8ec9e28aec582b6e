// Package emit builds spur's output records — triggers on the output topic
// and dead letters — and encodes them for the outbox that carries them from
// a committed state step to the broker.
//
// Trigger ids are deterministic (a hash of rule, customer and the qualifying
// cause), so a trigger re-sent from the outbox after a crash carries the same
// id and the same coupon code: consumers deduplicate on trigger_id.
package emit
