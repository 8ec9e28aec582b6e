// Package publish is the producer side of spur's input contract: storefront
// services use it to write well-formed events to spur's input topics.
//
// A Publisher validates each event with spur's own decoder (the JSON Schemas
// in schemas/, the same checks the engine runs), so an event it accepts is
// never dead-lettered by spur for its shape. It routes order events to the
// orders topic and all others to the clickstream topic, keys each record by
// the event's subject (customer id, or anonymous id before login), and
// partitions keys with murmur2 as the Java client and franz-go do, which is
// what co-partitions a customer's clickstream and orders for spur.
//
// Writes are synchronous and acknowledged by all in-sync replicas
// (acks=all); Publish returns an *Error per failed event naming its topic and
// event id. Retries can duplicate a record; spur deduplicates by event_id, so
// retrying a failed Publish with the same events is safe.
//
// The constructors (PageView, CartAdd, Order, ...) fill type, a random
// event id and the current time. Publish never creates topics.
//
// The Publisher is built on segmentio/kafka-go's Writer, deliberately not on
// the franz-go client spur itself uses: the end-to-end suite thus proves that
// records from an independent client partition and decode as spur expects.
package publish
