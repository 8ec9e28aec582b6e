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
}

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
	return n, nil
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
