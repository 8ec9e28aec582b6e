// Package bench measures spur as `spur bench` runs it: the engine under test
// is a child process (`spur run`, the same binary), so that its memory and
// its Pebble directory are its own, while this package hosts the broker
// (an embedded kfake broker unless Apache Kafka brokers are given), generates
// the load with pkg/loadgen, measures the ceiling and checks the output
// against the loadgen oracle.
//
// # Scenarios
//
// throughput (the default) runs, in one invocation on one broker:
//
//  1. a backlog of N events is produced as fast as possible, with event
//     times on a simulated clock that ends just before the run starts (so
//     coupons are neither stale nor in the future);
//  2. the ceiling: a plain franz-go consumer group, doing no work, reads the
//     backlog; its events/s is what the broker and a client can deliver;
//  3. the engine child starts on the backlog; its applied events/s (from
//     spur_events_consumed_total on its /metrics) until it has applied
//     everything is its maximum rate, and the ratio to the ceiling is the
//     headline figure;
//  4. fixed rates, by default 25, 50, 75 and 90 % of that maximum, each for
//     Duration, with live event times (each phase's events are generated
//     before it starts, each stamped with the moment it is due, and sent
//     then, so that generating them takes no CPU from the engine while it
//     is measured): the latency of every trigger from its
//     qualifying moment (qualified_at: the event time, or the timer
//     deadline) to its record timestamp on the output topic, and the timer
//     lateness (emitted_at − qualified_at), both into HdrHistograms;
//  5. the check: once every deadline has passed and the engine has no timer
//     or outbox row pending, the whole output topic is compared with the
//     oracle: missing, unexpected and duplicate triggers.
//
// restart loads state for Customers customers, kills the engine with
// SIGKILL and measures the time until it serves again (ready, and its first
// applied event); then it arms timers, kills it again, stays down until they
// are overdue, and measures how long they take to fire after the restart.
//
// memory loads Customers customers and reports the engine's resident memory
// and the size of its Pebble directory at checkpoints.
//
// # Timestamps
//
// Input records carry the event time as their record timestamp, as a
// storefront publishing in real time would: the engine merges a task's
// topics in record-timestamp order. The triggers topic is created with
// message.timestamp.type=LogAppendTime, so on Apache Kafka a trigger's record
// timestamp is the broker's append time. The embedded broker (kfake) ignores
// that topic setting and keeps the timestamp the engine's producer set when
// it produced the record; the result says which kind it saw.
package bench
