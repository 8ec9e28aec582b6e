// Package timer keeps durable timers as Pebble rows ordered by deadline, one
// index per partition, under the state package's partition prefix:
//
//	'p' | partition | 't' | deadline (unix ms, uint64 BE, offset) | timer id
//
// Because rows sort by deadline, the timers due at a moment are a bounded
// prefix scan, and the next deadline is a single seek. Timers are written in
// the same batch as the state change that armed them, so a timer exists if
// and only if the step that scheduled it was applied. The partition's worker
// is the only writer and the only one that fires them; the clock is injected
// so tests advance time instead of sleeping.
package timer
