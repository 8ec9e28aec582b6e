// Package ingest consumes spur's input topics as a franz-go consumer group
// and feeds each task (partition p of every input topic) to its engine
// worker, following franz-go's goroutine-per-partition example: a worker
// starts when its partitions are assigned, is drained and stopped when they
// are revoked or lost, and only offsets the worker has applied are
// committed.
//
// spur's own offsets live in Pebble, committed with the state they produced;
// the group's committed offsets serve lag monitoring and tooling, and are
// overridden on assignment by the stored ones, so a restart resumes exactly
// after the last applied record.
//
// Co-partitioning: the range balancer gives partition p of every subscribed
// topic to the same member when the input topics have equal partition
// counts, which spur checks before joining (EnsureTopics).
package ingest
