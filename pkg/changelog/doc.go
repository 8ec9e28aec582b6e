// Package changelog mirrors each partition's Pebble rows to a compacted
// Kafka topic and restores them from it, as Kafka Streams and goka do.
//
// The topic has one partition per task (the input topics' count). Every
// step of a worker that writes mirrored rows (customer records, timers,
// input offsets, output records waiting in the outbox, and their metadata)
// produces one record per written key — key = the Pebble key, value = the
// new value, a null value for a deletion — and then a step-end record. The
// records are put in a changelog outbox in the step's own Pebble batch, as
// one row per step holding their keys (the values go to the producer from
// memory), and they are produced in sequence order by one idempotent
// producer, so the partition holds a gapless prefix of the steps. A step's
// row goes, and the checkpoint moves past it, once the broker has
// acknowledged its step end. After a crash between commit and
// produce, the worker replaces what the outbox still holds by one step of
// the keys' current values under new sequence numbers
// (state.Store.ResumeChangelog) and sends that. Each record carries the writer id of the
// partition's copy that produced it and its sequence number (header
// spur-changelog), and a step end also carries header spur-step-end.
//
// A restore applies records only up to the last step end it reads: the
// records of a step whose end never reached the topic (its producer died)
// are not applied, so a half-produced step is never visible. The restorer
// then writes, as a step of its own, the current value of every key such a
// step touched, so that later steps do not make those records visible either.
//
// Each copy of a partition keeps a checkpoint, the changelog offset up to
// which its rows reflect the topic: advanced by a restore, and by the
// broker's acknowledgement of the records the copy produced itself. On
// assignment (Restorer.Restore):
//
//   - checkpoint = end: nothing to read (a clean restart).
//   - records of this copy still unacknowledged: the tail after the
//     checkpoint must be exactly their first records (acknowledged by the
//     broker before a crash); they are dropped from the outbox and the rest
//     re-sent as one step of current values. Anything else means another copy wrote the partition
//     meanwhile: the local copy diverged and is rebuilt from the topic.
//   - checkpoint < end: the tail is applied on top (warm restart), unless
//     the checkpoint is older than the tombstone retention allows.
//   - no local rows: the whole partition is read (full restore).
//   - local rows but no checkpoint, and an empty topic: the rows are
//     mirrored as one step (seeding a changelog turned on for existing state).
//
// Without Kafka transactions a zombie (an instance that lost its partitions
// but still produces) can interleave records with the new owner's; the
// consumer group's fencing bounds that window. With transactions (the
// store's outbox is then local, state.WithLocalOutbox) the task's
// transactional producer is initialised before Restore, fencing the zombie
// and ending its open transaction, and a transaction holds whole steps with
// their output records: records are read read_committed (markers skipped),
// and in the own-tail case the outbox rows of the steps found committed are
// dropped too, as their outputs were committed with them.
package changelog
