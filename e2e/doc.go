// Package e2e holds spur's end-to-end tests (testing tier 3) against a real
// Apache Kafka broker. They build only with the e2e tag and skip unless
// SPUR_KAFKA_BROKERS names a broker; `make test-kafka` starts one (single-node
// KRaft from Maven Central jars), runs them and stops it.
//
// Every test creates its own topics with unique names and deletes them at the
// end, so tests can share one broker and run in any order. Every wait is a
// poll bounded by a deadline; nothing sleeps to synchronise.
//
// This file has no build tag so that the package exists, and `go test
// ./e2e/...` without the tag reports "no test files" rather than failing.
package e2e
