package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicSpec describes the topics spur uses.
type TopicSpec struct {
	Inputs  []string
	Outputs []string // triggers, dead letters
	// For creation.
	Partitions        int32
	ReplicationFactor int16
	// MaxMessageBytes for created topics (0: broker default).
	MaxMessageBytes int
	// Changelog, when set, is the changelog topic: created (whatever
	// create says) compacted and with the input topics' partition count,
	// which an existing one must have.
	Changelog string
}

// ErrChangelogMismatch is returned for a changelog topic whose partitions
// do not match the input topics' or that is not compacted.
var ErrChangelogMismatch = errors.New("changelog topic does not fit the input topics")

// ErrPartitionMismatch is returned when the input topics' partition counts
// differ: a customer's events would not meet in one task.
var ErrPartitionMismatch = errors.New("input topics have different partition counts")

// ErrMissingTopic is returned for a missing topic when creation is off.
var ErrMissingTopic = errors.New("topic does not exist")

// EnsureTopics checks the topics exist (creating missing ones when create is
// set) and that every input topic has the same partition count, which it
// returns.
func EnsureTopics(ctx context.Context, adm *kadm.Client, spec TopicSpec, create bool) (int, error) {
	all := append(append([]string(nil), spec.Inputs...), spec.Outputs...)
	details, err := adm.ListTopics(ctx, all...)
	if err != nil {
		return 0, fmt.Errorf("list topics: %w", err)
	}
	var missing []string
	for _, t := range all {
		d, ok := details[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, t)
		} else if d.Err != nil {
			return 0, fmt.Errorf("topic %s: %w", t, d.Err)
		}
	}
	if len(missing) > 0 {
		if !create {
			return 0, fmt.Errorf("%w: %s (create them, or run with --create-topics)", ErrMissingTopic, strings.Join(missing, ", "))
		}
		partitions := spec.Partitions
		if partitions <= 0 {
			partitions = 1
		}
		// New input topics match the partition count of existing ones.
		for _, t := range spec.Inputs {
			if d, ok := details[t]; ok && d.Err == nil {
				partitions = int32(len(d.Partitions))
				break
			}
		}
		rf := spec.ReplicationFactor
		if rf <= 0 {
			rf = -1 // broker default
		}
		var configs map[string]*string
		if spec.MaxMessageBytes > 0 {
			v := fmt.Sprint(spec.MaxMessageBytes)
			configs = map[string]*string{"max.message.bytes": &v}
		}
		resp, err := adm.CreateTopics(ctx, partitions, rf, configs, missing...)
		if err != nil {
			return 0, fmt.Errorf("create topics: %w", err)
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				return 0, fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
			}
		}
		// Metadata of new topics propagates asynchronously: wait until
		// every topic shows its partitions.
		for {
			if details, err = adm.ListTopics(ctx, all...); err != nil {
				return 0, fmt.Errorf("list topics: %w", err)
			}
			if complete(details, all) {
				break
			}
			select {
			case <-ctx.Done():
				return 0, fmt.Errorf("created topics did not appear: %w", ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	n := -1
	var counts []string
	mismatch := false
	for _, t := range spec.Inputs {
		d, ok := details[t]
		if !ok {
			return 0, fmt.Errorf("%w: %s", ErrMissingTopic, t)
		}
		c := len(d.Partitions)
		counts = append(counts, fmt.Sprintf("%s=%d", t, c))
		if n >= 0 && c != n {
			mismatch = true
		}
		n = c
	}
	if mismatch {
		return 0, fmt.Errorf("%w (%s): give them the same number of partitions", ErrPartitionMismatch, strings.Join(counts, ", "))
	}
	if spec.Changelog != "" {
		if err := ensureChangelog(ctx, adm, spec, n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// ChangelogMinCompactionLag keeps the records of a step whose producer died
// uncompacted long enough for the next owner to supersede them (a restore
// does so at once): compaction must not let them hide an older value.
const ChangelogMinCompactionLag = time.Hour

// ensureChangelog creates the changelog topic with the input topics'
// partition count n, or checks that an existing one has it and is compacted.
func ensureChangelog(ctx context.Context, adm *kadm.Client, spec TopicSpec, n int) error {
	t := spec.Changelog
	details, err := adm.ListTopics(ctx, t)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	if d, ok := details[t]; ok && d.Err == nil {
		if len(d.Partitions) != n {
			return fmt.Errorf("%w: %s has %d partitions, the input topics %d; delete it (spur rebuilds it from the local state or the input) or give the inputs %d", ErrChangelogMismatch, t, len(d.Partitions), n, len(d.Partitions))
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, t)
		if err != nil {
			return fmt.Errorf("describe %s: %w", t, err)
		}
		rc, err := rcs.On(t, nil)
		if err != nil {
			return fmt.Errorf("describe %s: %w", t, err)
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && !strings.Contains(c.MaybeValue(), "compact") {
				return fmt.Errorf("%w: %s has cleanup.policy=%s; it must be compact, or old state is deleted", ErrChangelogMismatch, t, c.MaybeValue())
			}
		}
		return nil
	} else if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %s: %w", t, d.Err)
	}
	rf := spec.ReplicationFactor
	if rf <= 0 {
		rf = -1
	}
	compact, lag := "compact", fmt.Sprint(ChangelogMinCompactionLag.Milliseconds())
	configs := map[string]*string{"cleanup.policy": &compact, "min.compaction.lag.ms": &lag}
	if spec.MaxMessageBytes > 0 {
		v := fmt.Sprint(spec.MaxMessageBytes)
		configs["max.message.bytes"] = &v
	}
	// Instances started together race to create it: kadm returns the
	// topic's error as its own, and the loser's TOPIC_ALREADY_EXISTS is
	// fine (the partition count is checked below).
	resp, err := adm.CreateTopic(ctx, int32(n), rf, configs, t)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", t, err)
	}
	if err == nil && resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", t, resp.Err)
	}
	for {
		if details, err = adm.ListTopics(ctx, t); err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		if complete(details, []string{t}) {
			if got := len(details[t].Partitions); got != n {
				return fmt.Errorf("%w: %s has %d partitions, the input topics %d", ErrChangelogMismatch, t, got, n)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("created topic %s did not appear: %w", t, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func complete(details kadm.TopicDetails, topics []string) bool {
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return false
		}
	}
	return true
}
