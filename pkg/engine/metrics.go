package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spur-crm/spur/pkg/event"
)

// Metrics are the engine's Prometheus metrics, registered on the Registerer
// the caller injects.
type Metrics struct {
	EventsConsumed   *prometheus.CounterVec   // topic, type
	DeadLetters      *prometheus.CounterVec   // reason
	Duplicates       prometheus.Counter       // producer retries of an applied event_id
	KeyMismatch      *prometheus.CounterVec   // topic
	Triggers         *prometheus.CounterVec   // rule, kind
	TriggersStale    *prometheus.CounterVec   // rule
	TriggerLatency   *prometheus.HistogramVec // rule
	TimersPending    *prometheus.GaugeVec     // partition
	TimersFired      prometheus.Counter
	TimerLateness    prometheus.Histogram
	ConsumerLag      *prometheus.GaugeVec // topic, partition
	InputUnapplied   *prometheus.GaugeVec // topic, partition
	OutboxPending    *prometheus.GaugeVec // partition
	ChangelogPending *prometheus.GaugeVec // partition
	ProduceErrors    *prometheus.CounterVec
	StepDuration     prometheus.Histogram
	SkippedReplayed  prometheus.Counter
	TaskIdleExpired  prometheus.Counter
	Superseded       prometheus.Counter
	Suppressed       *prometheus.CounterVec // rule, reason
	Emitted          *prometheus.CounterVec // rule, variant
	Conversions      *prometheus.CounterVec // rule, variant
	Tags             *prometheus.CounterVec // rule, op
	RuleErrors       *prometheus.CounterVec // rule
	Delayed          *prometheus.CounterVec // rule
	Reloads          *prometheus.CounterVec // result
	Transactions     *prometheus.CounterVec // result
	EndProbe         prometheus.Histogram
	RecordE2E        prometheus.Histogram
	FetchDelay       prometheus.Histogram
	InputWait        prometheus.Histogram
	// MergeHold is by what the hold waited for: "records" (the other
	// topic's end was past what had been fetched of it) or "end" (its end
	// not seen since the head record was fetched).
	MergeHold *prometheus.HistogramVec
}

// What a merge hold waited for (spur_merge_hold_seconds's wait_for).
const (
	HoldRecords = "records"
	HoldEnd     = "end"
)

// NewMetrics creates and registers the engine's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsConsumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spur_events_consumed_total", Help: "Input records applied, by topic and event type (invalid records count as type \"invalid\").",
		}, []string{"topic", "type"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spur_dead_letters_total", Help: "Input records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spur_duplicate_events_total", Help: "Events skipped because their event_id was already applied for the customer (producer retries).",
		}),
		KeyMismatch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spur_key_partition_mismatch_total", Help: "Records whose key hashes (murmur2) to another partition than the one they arrived on.",
		}, []string{"topic"}),
		Triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spur_triggers_total", Help: "Triggers acknowledged on the output topic, by rule and kind.",
		}, []string{"rule", "kind"}),
		TriggersStale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spur_triggers_stale_total", Help: "Triggers not emitted because their qualifying moment was older than the staleness bound.",
		}, []string{"rule"}),
		TriggerLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "spur_trigger_latency_seconds", Help: "Time from a trigger's qualifying moment to the broker's acknowledgement of its record.",
			Buckets:                        []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60},
			NativeHistogramBucketFactor:    1.1,
			NativeHistogramMaxBucketNumber: 160,
		}, []string{"rule"}),
		TimersPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spur_timers_pending", Help: "Durable timers armed, by partition.",
		}, []string{"partition"}),
		TimersFired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spur_timers_fired_total", Help: "Timers fired.",
		}),
		TimerLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "spur_timer_lateness_seconds", Help: "Time between a timer's deadline and its firing.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 5, 15, 60},
		}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spur_consumer_lag", Help: "Records between the partition's high watermark and the next offset spur will apply.",
		}, []string{"topic", "partition"}),
		InputUnapplied: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spur_input_unapplied_bytes", Help: "Bytes (keys, values, headers) of fetched input records handed to the partition's worker and not yet applied; bounded per topic by MaxUnappliedBytes (8 MiB).",
		}, []string{"topic", "partition"}),
		OutboxPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spur_outbox_pending", Help: "Output records committed to the outbox and not yet acknowledged by the broker.",
		}, []string{"partition"}),
		ChangelogPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spur_changelog_pending", Help: "Changelog records committed to the changelog outbox and not yet acknowledged by the broker.",
		}, []string{"partition"}),
		ProduceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spur_produce_errors_total", Help: "Failed produce attempts of output records (they are retried from the outbox).",
		}, []string{"topic"}),
		StepDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "spur_step_duration_seconds", Help: "Time to apply and commit one step (a batch of records or due timers).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		SkippedReplayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spur_records_skipped_applied_total", Help: "Records skipped because their offset was already applied (redelivery after a restart or rebalance).",
		}),
		TaskIdleExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spur_task_idle_expired_total", Help: "Times a record was applied without waiting longer for another input topic that was behind (max task idle reached).",
		}),
	}
	m.Superseded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spur_cart_events_superseded_total", Help: "Cart events applied after an order stamped later than them: they neither edit the cart nor arm a wait.",
	})
	m.Suppressed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_triggers_suppressed_total", Help: "Triggers that qualified but were not emitted by a guardrail, by rule and reason (cooldown, capped).",
	}, []string{"rule", "reason"})
	m.Emitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_triggers_emitted_total", Help: "Triggers written to the outbox, by rule and variant (treatment, holdout): lift is conversions per variant over these.",
	}, []string{"rule", "variant"})
	m.Conversions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_conversions_total", Help: "Orders within a pipeline's attribution window after its trigger, by rule and variant: lift = conversions/emitted of treatment against holdout.",
	}, []string{"rule", "variant"})
	m.Tags = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_tags_total", Help: "Dynamic tag changes by rule and op: added, refreshed (expiry moved on), removed (by a rule), expired (TTL ran out; each added and removed emits a trigger), dropped (the customer holds the most tags).",
	}, []string{"rule", "op"})
	m.RuleErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_rule_errors_total", Help: "Rule evaluations that failed at run time (an expression error, an unusable tag name); the rule did not fire for that customer and the engine went on.",
	}, []string{"rule"})
	m.Delayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_triggers_delayed_total", Help: "Triggers that qualified within the customer's quiet hours and were held to their end.",
	}, []string{"rule"})
	m.Reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_pipeline_reloads_total", Help: "Pipeline reloads by result: ok, or failed (the check failed and the running set was kept).",
	}, []string{"result"})
	reg.MustRegister(m.Tags, m.RuleErrors, m.Delayed, m.Reloads, m.Conversions, m.Suppressed, m.Emitted, m.Superseded, m.TaskIdleExpired, m.EventsConsumed, m.DeadLetters, m.Duplicates, m.KeyMismatch, m.Triggers, m.TriggersStale,
		m.TriggerLatency, m.TimersPending, m.TimersFired, m.TimerLateness, m.ConsumerLag, m.InputUnapplied, m.OutboxPending,
		m.ProduceErrors, m.StepDuration, m.SkippedReplayed)
	m.Transactions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_transactions_total", Help: "Task transactions (with --transactions), by result: committed, aborted (re-sent by a new producer), fenced (another producer took the task's transactional id), unknown (outcome unknown: the task is restarted and reads the changelog to tell).",
	}, []string{"result"})
	reg.MustRegister(m.Transactions)
	m.EndProbe = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "spur_end_probe_seconds", Help: "Round trip of one read of the input topics' end offsets (--end-probe-interval): a due timer waits for the first probe asked after its deadline, so this adds to its lateness.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	reg.MustRegister(m.EndProbe)
	delays := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 60}
	m.RecordE2E = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "spur_record_e2e_latency_seconds", Help: "Time from an input record's timestamp (the producer's, or the broker's with LogAppendTime) to the step that applied it, as Kafka Streams' record-e2e-latency: a timer fires once the input is applied past its deadline, so this bounds its lateness from below.",
		Buckets: delays,
	})
	m.FetchDelay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "spur_fetch_delay_seconds", Help: "Time from the timestamp of the first record of each fetched batch to the poll that returned it: the part of spur_record_e2e_latency_seconds spent before spur had the record.",
		Buckets: delays,
	})
	// Finer than delays: these are parts of a record's end-to-end delay,
	// to be told apart at the tens of milliseconds a timer's lateness is.
	waits := prometheus.ExponentialBuckets(0.0005, 1.5, 20) // 0.5 ms to 1.1 s
	m.InputWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "spur_input_wait_seconds", Help: "Time from the poll that returned an input record to the step that applied it: waiting for its worker to finish the step before, and for the other input topic (spur_merge_hold_seconds). With spur_fetch_delay_seconds before it, it makes spur_record_e2e_latency_seconds.",
		Buckets: waits,
	})
	m.MergeHold = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "spur_merge_hold_seconds", Help: "How long a worker held its input back for the other input topic, per hold, by what it waited for: wait_for=\"records\" when that topic's end was past what had been fetched of it (its records known to be unread), wait_for=\"end\" when its end had not been seen since the head record was fetched (a later fetch response or end probe tells it). A hold ends once that is known, or --max-task-idle (--max-task-idle-behind for records) runs out.",
		Buckets: waits,
	}, []string{"wait_for"})
	m.MergeHold.WithLabelValues(HoldRecords)
	m.MergeHold.WithLabelValues(HoldEnd)
	reg.MustRegister(m.RecordE2E, m.FetchDelay, m.InputWait, m.MergeHold)
	for _, r := range event.Reasons {
		m.DeadLetters.WithLabelValues(string(r))
	}
	return m
}
