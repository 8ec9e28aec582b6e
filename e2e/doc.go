// Package e2e holds spur's end-to-end tests (testing tier 3) against a real
// Apache Kafka broker. They build only with the e2e tag and skip unless
// SPUR_KAFKA_BROKERS names a broker; `make test-kafka` starts one (single-node
// KRaft from Maven Central jars), runs them and stops it.
//
// TestMain builds the real `spur` binary once, and the tests run it as
// separate processes: `spur run` against the broker (one process, or two in
// one consumer group with one killed by SIGKILL mid-stream) and `spur dev`
// with its embedded listener. They publish with pkg/publish (kafka-go),
// franz-go, pkg/loadgen and kcat, and judge spur by what it writes to its
// triggers and dead-letter topics, by its /metrics and /readyz, and by the
// offsets its consumer group commits. Each spur process logs to a file that
// is printed when its test fails.
//
// Every test creates its own topics and consumer groups with unique names
// and deletes the topics at the end, so tests can share one broker, run in
// any order and be rerun on the same broker. Every wait is a poll bounded by
// a deadline that reports what it was still missing; nothing sleeps to
// synchronise. The pipelines run with waits and tag TTLs of a few seconds
// of real time.
//
// This file has no build tag so that the package exists, and `go test
// ./e2e/...` without the tag reports "no test files" rather than failing.
package e2e
