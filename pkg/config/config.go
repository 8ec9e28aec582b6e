package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Defaults.
const (
	DefaultClickstreamTopic = "shop.clickstream"
	DefaultOrdersTopic      = "shop.orders"
	DefaultTriggersTopic    = "spur.triggers"
	DefaultDLQTopic         = "spur.dlq"
	DefaultGroup            = "spur"
	DefaultHTTP             = "127.0.0.1:9644"
	DefaultStaleness        = time.Hour
	DefaultMaxClockSkew     = 5 * time.Minute
	DefaultMaxEventBytes    = 1 << 20
)

// Config is the engine's configuration, shared by `spur run` and `spur dev`.
// The struct tags drive the command line (kong): every field is a flag,
// SPUR_<FLAG> in the environment, and a key of the YAML config file.
type Config struct {
	DataDir            string        `name:"data-dir" default:"./spur-data" help:"Directory of spur's state (Pebble) and, in dev, of the embedded broker's log."`
	Pipelines          string        `name:"pipelines" default:"./pipelines" help:"Directory of pipeline YAML files."`
	PipelinesWatch     time.Duration `name:"pipelines-watch" default:"2s" help:"How often the pipeline directory is checked for changes, which are reloaded without a restart when they pass the check (0: only on SIGHUP)."`
	HTTP               string        `name:"http" default:"127.0.0.1:9644" help:"Address of /metrics, /healthz and /readyz."`
	Group              string        `name:"group" default:"spur" help:"Consumer group id."`
	ClickstreamTopic   string        `name:"clickstream-topic" default:"shop.clickstream" help:"Input topic of clickstream events."`
	OrdersTopic        string        `name:"orders-topic" default:"shop.orders" help:"Input topic of order events."`
	TriggersTopic      string        `name:"triggers-topic" default:"spur.triggers" help:"Output topic of triggers."`
	DLQTopic           string        `name:"dlq-topic" default:"spur.dlq" help:"Dead-letter topic."`
	Partitions         int32         `name:"partitions" default:"4" help:"Partitions of topics spur creates."`
	Replication        int16         `name:"replication-factor" default:"-1" help:"Replication factor of topics spur creates (-1: broker default)."`
	Staleness          time.Duration `name:"staleness" default:"1h" help:"Triggers whose qualifying moment is older than this are recorded as stale, not emitted."`
	MaxClockSkew       time.Duration `name:"max-clock-skew" default:"5m" help:"Events stamped further than this in the future are dead-lettered."`
	MaxEventBytes      int           `name:"max-event-bytes" default:"1048576" help:"Larger input values are dead-lettered unparsed."`
	InstanceID         string        `name:"instance-id" help:"Static group member id (KIP-345), so a restarted instance gets its partitions back at once. Default: generated once and kept in the data dir."`
	SessionTimeout     time.Duration `name:"session-timeout" default:"10s" help:"Consumer group session timeout: how long a dead instance keeps its partitions."`
	CacheMB            int64         `name:"cache-mb" default:"64" help:"Pebble block cache size in MiB (the memtables get room of their own beside it)."`
	MemoryLimitMB      int64         `name:"memory-limit-mb" default:"256" help:"Soft limit of the Go heap in MiB (the garbage collector works harder near it; GOMEMLIMIT, when set, wins; 0: none). Pebble's block cache and memtables are outside it; the customer cache comes on top of it."`
	PebbleMemTableMB   int           `name:"pebble-memtable-mb" default:"32" help:"Pebble memtable size in MiB (up to two are held while one flushes)."`
	PebbleL0Compact    int           `name:"pebble-l0-compaction" default:"4" help:"L0 read amplification (sublevels) at which Pebble starts compacting L0 into the next level."`
	PebbleL0Stop       int           `name:"pebble-l0-stop-writes" default:"24" help:"L0 sublevels at which Pebble stops writes until compactions catch up (spur's consumer pauses meanwhile)."`
	PebbleCompactions  int           `name:"pebble-compactions" default:"2" help:"Concurrent Pebble compactions."`
	PebbleBloomBits    int           `name:"pebble-bloom-bits" default:"10" help:"Bloom filter bits per key (reads of unseen customers skip the disk); -1 turns filters off."`
	PebbleCompression  string        `name:"pebble-compression" default:"snappy" enum:"snappy,fastest,none" help:"Compression of Pebble's sstable blocks: snappy, fastest (MinLZ; upgrades the store to Pebble's newest format, which older spur versions cannot open), none."`
	CapTriggers        int           `name:"cap-triggers" default:"0" help:"At most this many triggers per customer across pipelines within --cap-window (0: no cap)."`
	CapWindow          time.Duration `name:"cap-window" default:"168h" help:"Window of --cap-triggers."`
	CustomerCacheMB    int           `name:"customer-cache-mb" default:"64" help:"MiB of encoded customer records kept in memory, shared evenly by the input partitions (0: none, every read goes to Pebble). It saves a Pebble read per event of a recently active customer. Up to an eighth more holds the arrays the steps add recent events to, reused from step to step."`
	Changelog          bool          `name:"changelog" default:"true" negatable:"" help:"Mirror every partition's state and timers to a compacted changelog topic (created with the input topics' partition count) and restore a partition from it on assignment when its local state is missing or behind (--no-changelog: rebuild by replaying the input from the start)."`
	ChangelogTopic     string        `name:"changelog-topic" help:"Changelog topic (default: <group>.changelog)."`
	Transactions       bool          `name:"transactions" help:"Exactly-once output: each task's changelog records and output records (triggers, dead letters) are written in Kafka transactions by a producer per task (transactional id <group>-task-<n>), so a read_committed consumer of the output topics sees every record once. Needs the changelog. Off: at-least-once, a re-send carrying the same trigger_id."`
	CommitInterval     time.Duration `name:"commit-interval" default:"1s" help:"How often applied offsets are committed to the consumer group."`
	ProduceLinger      time.Duration `name:"produce-linger" default:"5ms" help:"How long the producer waits for more records before it sends a request (Kafka's linger.ms, 5 ms by default since Kafka 4.0): fewer, larger produce requests of triggers and changelog records save the brokers much of their CPU. It adds at most this to a trigger's latency; 0: send at once."`
	ProduceCompression string        `name:"produce-compression" default:"lz4" enum:"none,snappy,lz4,zstd" help:"Compression of the batches spur produces (triggers, dead letters, changelog records): Kafka's compression.type. lz4 costs the engine about what it saves it in produce requests, and the broker handles a fraction of the changelog's bytes."`
	StepLinger         time.Duration `name:"step-linger" default:"0s" help:"How long a partition's worker, given fewer than 200 records, waits for more before it applies them in one synced step (0: none)."`
	EndProbeInterval   time.Duration `name:"end-probe-interval" default:"10ms" help:"How often the input topics' end offsets are read (one ListOffsets request): a timer fires only once every input topic is known to hold nothing older than its deadline, so on a quiet topic this bounds how late a timer fires."`
	LogLevel           string        `name:"log-level" default:"info" enum:"debug,info,warn,error" help:"Log level."`
	LogFormat          string        `name:"log-format" default:"json" enum:"json,console" help:"Log format."`
}

// ChangelogTopicName returns the changelog topic, or "" with --no-changelog.
func (c *Config) ChangelogTopicName() string {
	switch {
	case !c.Changelog:
		return ""
	case c.ChangelogTopic != "":
		return c.ChangelogTopic
	}
	return c.Group + ".changelog"
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("group is required"))
	}
	topics := map[string]string{"clickstream-topic": c.ClickstreamTopic, "orders-topic": c.OrdersTopic, "triggers-topic": c.TriggersTopic, "dlq-topic": c.DLQTopic}
	if t := c.ChangelogTopicName(); t != "" && c.Group != "" {
		topics["changelog-topic"] = t
	}
	seen := map[string]string{}
	for flag, t := range topics {
		if t == "" {
			errs = append(errs, fmt.Errorf("%s is required", flag))
			continue
		}
		if other, dup := seen[t]; dup {
			errs = append(errs, fmt.Errorf("%s and %s name the same topic %q", flag, other, t))
		}
		seen[t] = flag
	}
	if c.Transactions && !c.Changelog {
		errs = append(errs, errors.New("transactions need the changelog (drop --no-changelog)"))
	}
	if c.HTTP != "" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			errs = append(errs, fmt.Errorf("http %q: %w", c.HTTP, err))
		}
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions must be at least 1, got %d", c.Partitions))
	}
	if c.Staleness <= 0 {
		errs = append(errs, fmt.Errorf("staleness must be positive, got %s", c.Staleness))
	}
	if c.MaxClockSkew < 0 {
		errs = append(errs, fmt.Errorf("max-clock-skew must not be negative, got %s", c.MaxClockSkew))
	}
	if c.MaxEventBytes < 1024 {
		errs = append(errs, fmt.Errorf("max-event-bytes must be at least 1024, got %d", c.MaxEventBytes))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("session-timeout must be at least 1s, got %s", c.SessionTimeout))
	}
	if c.ProduceLinger < 0 || c.ProduceLinger > time.Second {
		errs = append(errs, fmt.Errorf("produce-linger must be within 0..1s, got %s", c.ProduceLinger))
	}
	if c.StepLinger < 0 || c.StepLinger > time.Second {
		errs = append(errs, fmt.Errorf("step-linger must be within 0..1s, got %s", c.StepLinger))
	}
	if c.CapTriggers < 0 {
		errs = append(errs, fmt.Errorf("cap-triggers must not be negative, got %d", c.CapTriggers))
	}
	if c.CapTriggers > 0 && c.CapWindow <= 0 {
		errs = append(errs, fmt.Errorf("cap-window must be positive with cap-triggers, got %s", c.CapWindow))
	}
	if c.CustomerCacheMB < 0 {
		errs = append(errs, fmt.Errorf("customer-cache-mb must not be negative, got %d", c.CustomerCacheMB))
	}
	if c.MemoryLimitMB < 0 {
		errs = append(errs, fmt.Errorf("memory-limit-mb must not be negative, got %d", c.MemoryLimitMB))
	}
	if c.CacheMB < 1 {
		errs = append(errs, fmt.Errorf("cache-mb must be at least 1, got %d", c.CacheMB))
	}
	if c.PebbleMemTableMB < 1 || c.PebbleMemTableMB > 1024 {
		errs = append(errs, fmt.Errorf("pebble-memtable-mb must be within 1..1024, got %d", c.PebbleMemTableMB))
	}
	if c.PebbleL0Compact < 1 {
		errs = append(errs, fmt.Errorf("pebble-l0-compaction must be at least 1, got %d", c.PebbleL0Compact))
	}
	if c.PebbleL0Stop < 5 {
		errs = append(errs, fmt.Errorf("pebble-l0-stop-writes must be at least 5, got %d", c.PebbleL0Stop))
	}
	if c.PebbleCompactions < 1 {
		errs = append(errs, fmt.Errorf("pebble-compactions must be at least 1, got %d", c.PebbleCompactions))
	}
	return errors.Join(errs...)
}

// SplitBrokers parses a comma-separated broker list.
func SplitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
