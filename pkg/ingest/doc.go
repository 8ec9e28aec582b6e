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
// Co-partitioning and rebalancing: the group uses CopartitionBalancer
// (protocol spur-copartition-v1), which assigns whole tasks, keeps each
// task where it is while the group stays balanced, and rebalances
// cooperatively (KIP-429): a member joining or leaving moves only the tasks
// that must move, each revoked whole from its old owner before its new
// owner gets it, while every other worker keeps running. The input topics
// must have equal partition counts, which spur checks before joining
// (EnsureTopics). The eager range balancer, which also co-partitions, is
// listed second for upgrades from versions that used it.
package ingest
