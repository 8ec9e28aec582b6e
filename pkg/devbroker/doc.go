// Package devbroker runs an embedded Kafka-protocol broker (franz-go's kfake)
// for `spur dev`, the quick start and fast tests. Any Kafka client — kcat,
// kafka-go, librdkafka, franz-go — can connect to its listener. With a data
// directory it persists its log, so restarting `spur dev` loses nothing.
//
// It is a development broker: single node, no replication, no security.
// Production runs against a real Kafka cluster with `spur run`.
package devbroker
